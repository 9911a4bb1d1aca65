"""``import persistence_sync`` is safe while Django is still starting."""

import subprocess
import sys


def test_the_package_root_loads_no_models_or_views():
    code = (
        "import sys, persistence_sync; "
        "loaded = [m for m in ('persistence_sync.models', 'persistence_sync.views', "
        "'persistence_sync.registry', 'rest_framework.views') if m in sys.modules]; "
        "assert not loaded, loaded; print(persistence_sync.__version__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PATH": "", "PYTHONPATH": ":".join(sys.path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __import__("persistence_sync").__version__
