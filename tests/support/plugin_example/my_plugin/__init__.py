"""An example biobench plugin, written only against biobench's public API (docs: "Add your own
learning rule", docs/tutorials/own-rule.md). The tests put it on the path with an entry-point
distribution and drive it through the `biobench` command."""
