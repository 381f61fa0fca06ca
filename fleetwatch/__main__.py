from fleetwatch.cli import main

raise SystemExit(main())
