"""The Slicer module's files: .ui against the code that uses it, CMake lists against the tree, Python 3.9 syntax."""

import ast
import re
import xml.etree.ElementTree as ET

import pytest

from conftest import MODULE_DIR, REPO

MODULE_PY = MODULE_DIR / "SIBSpineSBRT.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "SIBSpineSBRT.ui"

# Slicer naming convention: a widget's name ends with its kind.
SUFFIX_CLASS = [
    ("CollapsibleButton", "ctkCollapsibleButton"),
    ("PathLineEdit", "ctkPathLineEdit"),
    ("ProgressBar", "QProgressBar"),
    ("Button", "QPushButton"),
    ("Selector", "qMRMLNodeComboBox"),
    ("ComboBox", "QComboBox"),
    ("Label", "QLabel"),
    ("Table", "QTableWidget"),
    ("Slider", "ctkSliderWidget"),
    ("CheckBox", "QCheckBox"),
]


def ui_widgets():
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def used_ui_names():
    return set(re.findall(r"self\.ui\.(\w+)", MODULE_PY.read_text()))


def expected_class(name):
    for suffix, cls in SUFFIX_CLASS:
        if name.lower().endswith(suffix.lower()):
            return cls
    return None


def test_every_ui_name_used_exists_with_the_right_class():
    widgets = ui_widgets()
    used = used_ui_names()
    assert used, "the module uses no self.ui names?"
    for name in sorted(used):
        assert name in widgets, f"self.ui.{name} is not in {UI_FILE.name}"
        cls = expected_class(name)
        assert cls is not None, f"self.ui.{name}: name does not end with a known widget kind"
        assert widgets[name].get("class") == cls, f"self.ui.{name} is a {widgets[name].get('class')}, expected {cls}"


def test_ui_parameter_bindings_name_parameter_node_fields():
    tree = ast.parse(MODULE_PY.read_text())
    node_cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SIBSpineSBRTParameterNode")
    fields = {s.target.id for s in node_cls.body if isinstance(s, ast.AnnAssign)}
    bound = []
    for w in ui_widgets().values():
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound.append(prop.find("string").text)
    assert bound and set(bound) <= fields and len(bound) == len(set(bound))
    assert fields - set(bound) == {"roleOverrides", "results"}  # kept by the module, not bound to a widget


def cmake_list(var):
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    body = re.search(rf"set\({var}\s+(.*?)\)", text, re.S).group(1)
    return {line.strip().replace("${MODULE_NAME}", "SIBSpineSBRT") for line in body.splitlines() if line.strip()}


def test_cmake_lists_every_python_file_and_resource():
    scripts = cmake_list("MODULE_PYTHON_SCRIPTS")
    resources = cmake_list("MODULE_PYTHON_RESOURCES")
    on_disk_py = {str(p.relative_to(MODULE_DIR)) for p in (MODULE_DIR / "SIBSpineSBRTLib").rglob("*.py")}
    on_disk_res = {str(p.relative_to(MODULE_DIR)) for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()}
    assert scripts == on_disk_py | {"SIBSpineSBRT.py"}
    assert resources == on_disk_res
    top = (REPO / "CMakeLists.txt").read_text()
    assert "set(EXTENSION_DEPENDS SlicerRT)" in top and "add_subdirectory(SIBSpineSBRT)" in top
    assert "WITH_GENERIC_TESTS" in (MODULE_DIR / "CMakeLists.txt").read_text()


@pytest.mark.parametrize("path", sorted(MODULE_DIR.rglob("*.py")), ids=lambda p: str(p.relative_to(MODULE_DIR)))
def test_module_code_compiles_on_this_python(path):
    # In the Python 3.9 pass this is the Slicer 5.6/5.8 syntax check for every file, Qt module included.
    compile(path.read_text(), str(path), "exec", dont_inherit=True)


def test_library_has_no_qt_or_slicer_util_at_import_time():
    for path in (MODULE_DIR / "SIBSpineSBRTLib").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module-level imports only
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for n in names:
                    assert not re.match(r"^(qt|ctk|slicer(\.util)?|vtk)$|^slicer\.", n), (
                        f"{path.name} imports {n} at module level"
                    )
