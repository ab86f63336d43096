import sys

from borgwatch.entry import main

sys.exit(main())
