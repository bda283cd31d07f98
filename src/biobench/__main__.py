from biobench.cli import main

main()
