import sys

from autoscaler.service import main

sys.exit(main())
