import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Real COCO / MPII sample files live beside the repository (never committed).
REAL_SAMPLES = Path(os.environ.get('REAL_SAMPLES', ROOT.parent / 'shared' / 'real_samples'))
