from octotrio.cli import main

main()
