"""Helpers only the tests use (Airflow homes, MySQL servers, deployments), plus the shared ones.

``data``, ``processes`` and ``servers`` live in the top-level ``testkit``
package, which the benchmarks import too; they are registered here under
``tests.support`` as the very same module objects (one implementation, one
state), so ``from tests.support.data import ...`` keeps working.
"""

import sys

from testkit import data, processes, servers

for _module in (data, processes, servers):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[-1]}"] = _module
