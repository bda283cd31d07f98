"""An example biobench plugin, written only against biobench's public API (README: "Add your own
learning rule"). The tests put it on the path with an entry-point distribution and drive it
through the `biobench` command."""
