from prunebench.cli.main import main

raise SystemExit(main())
