from borgwatch.cli import main

main()
