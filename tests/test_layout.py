"""The import rules of the layout, checked on the source: arrows point down only."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_STAGE_MODULE = 'stages.evaluation'  # the one shared wiring module the stage files may use


def imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_no_stage_file_imports_another_stage_file():
    for path in sorted((ROOT / 'stages').glob('*.py')):
        rel = str(path.relative_to(ROOT))
        stages = {m for m in imported_modules(path) if m.startswith('stages.')} - {SHARED_STAGE_MODULE}
        assert not stages, f'{rel} imports {sorted(stages)}'


def test_nothing_below_the_stages_imports_them():
    folders = ['benchmarks', 'pipeline', 'data', 'teachers', 'cache', 'outputs', 'training']
    for folder in folders:
        for path in sorted((ROOT / folder).rglob('*.py')):
            bad = {m for m in imported_modules(path) if m == 'stages' or m.startswith('stages.') or m == 'cli'}
            assert not bad, f'{path.relative_to(ROOT)} imports {sorted(bad)}'


def test_data_and_cache_stay_at_the_bottom():
    above = ('teachers', 'cache', 'outputs', 'pipeline', 'training', 'stages')
    for path in sorted((ROOT / 'data').rglob('*.py')):
        bad = {m for m in imported_modules(path) if m.split('.')[0] in above}
        assert not bad, f'{path.relative_to(ROOT)} imports {sorted(bad)}'
    for path in sorted((ROOT / 'cache').rglob('*.py')):
        bad = {m for m in imported_modules(path) if m.split('.')[0] in ('teachers', 'stages', 'training', 'torch')}
        assert not bad, f'{path.relative_to(ROOT)} imports {sorted(bad)}'


def test_only_the_generators_import_the_synthetic_renderer():
    """Evaluation reads the twins' truth (data/truth.py) without pulling in the renderer: only the
    commands that make the twins import data.twins."""
    makers = {'cli.py', 'stages/demo.py'}
    for folder in ('benchmarks', 'pipeline', 'data', 'teachers', 'cache', 'outputs', 'training', 'stages'):
        for path in sorted((ROOT / folder).rglob('*.py')):
            rel = str(path.relative_to(ROOT))
            if rel.startswith('data/twins/') or rel in makers:
                continue
            bad = {m for m in imported_modules(path) if m == 'data.twins' or m.startswith('data.twins.')}
            assert not bad, f'{rel} imports {sorted(bad)}'
