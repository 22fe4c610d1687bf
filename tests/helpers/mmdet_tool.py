"""Run one of mmdet's own tools (tools/train.py, tools/test.py) as a user would, in this process.

mmdet ships its tools inside the package (mmdet/.mim/tools). On torch >= 2.6 tools/test.py cannot load an
mmengine checkpoint (torch.load's weights_only), so the few classes mmengine pickles are allowlisted first,
as a user's patched copy would.

    python tests/helpers/mmdet_tool.py train.py CONFIG --work-dir DIR
"""

import runpy
import sys
from pathlib import Path

import mmdet

from ablation.model.checkpoints import allow_mmengine_checkpoints

allow_mmengine_checkpoints()
tool = Path(mmdet.__file__).parent / ".mim" / "tools" / sys.argv[1]
sys.argv = [str(tool), *sys.argv[2:]]
runpy.run_path(str(tool), run_name="__main__")
