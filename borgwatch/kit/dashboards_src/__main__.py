from borgwatch.kit.dashboards_src import main

main()
