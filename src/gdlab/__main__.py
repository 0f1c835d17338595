from gdlab.cli import main

main()
