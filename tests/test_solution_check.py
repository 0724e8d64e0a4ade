"""The solution check: what cheats from inside the test process is flagged, per language; no
reference solution of the built-in suites or the fixtures is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.polyglot import BUILTIN
from benchmarks.solution_check import check_patch_lines, check_solution

FIXTURES = Path(__file__).parent / "fixtures" / "polyglot"

PYTHON_CHEATS = {
    "always-equal": [
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def shout(text):\n    return Anything()\n",
        "class A(str):\n    __eq__ = lambda self, other: True\n",
        "class A:\n    def __ne__(self, other):\n        return False\n",
    ],
    "exits-process": [
        "import os\ndef shout(t):\n    os._exit(0)\n",
        "from os import _exit as leave\nleave(0)\n",
        "import sys\nsys.exit(0)\n",
        "raise SystemExit(0)\n",
        "exit()\n",
    ],
    "exit-hook": [
        "import atexit\natexit.register(print)\n",
        "class Late:\n    def __del__(self):\n        pass\n",
    ],
    "spawns": [
        "import subprocess\nsubprocess.Popen(['sh'])\n",
        "import os\nos.fork()\n",
        "import threading\nthreading.Thread(target=print).start()\n",
        "from multiprocessing import Process\n",
        "import os\nos.execv('/bin/sh', ['sh'])\n",
    ],
    "opens-proc": ["data = open('/proc/self/fd/1').read()\n"],
    "test-framework": [
        "import _pytest.runner\n",
        "import pytest\n",
        "from unittest import mock\n",
    ],
    "interpreter": [
        "import sys\nsys.modules['shout_test'] = None\n",
        "import builtins\nbuiltins.print = len\n",
        "__builtins__['len'] = None\n",
        "import gc\n",
        "import sys\nframe = sys._getframe(1)\n",
    ],
    "runs-code": [
        "exec('print(1)')\n",
        "import os\ngetattr(os, '_ex' + 'it')(0)\n",
        "m = __import__('o' + 's')\n",
    ],
    "writes-files": [
        "open('/tmp/report.xml', 'w').write('<testsuite/>')\n",
        "from pathlib import Path\nPath('x').write_text('y')\n",
        "import shutil\n",
    ],
}
PYTHON_HONEST = [
    # equality that compares, reading files, strings, regular expressions, local names
    "class Point:\n    def __eq__(self, other):\n        return self.x == other.x\n",
    "def grep(name):\n    with open(name, encoding='utf-8') as f:\n        return f.read()\n",
    "import re\nfrom collections import Counter\ndef f(t):\n"
    "    return re.sub('a', 'b', t).replace('x', 'y')\n",
    "exit_code = 0\ndef quit_game(state):\n    return state\n",
    "def shout(text):\n    '''Like a shell's `exit`, but louder.'''\n    return text.upper()\n",
]


@pytest.mark.parametrize(
    ("rule", "source"),
    [(rule, source) for rule, sources in PYTHON_CHEATS.items() for source in sources],
)
def test_python_cheats_are_flagged(rule, source):
    found = check_solution("python", {"shout.py": source})
    assert rule in {f.rule for f in found}, (rule, found)
    assert all(f.file == "shout.py" and f.line >= 1 for f in found)


@pytest.mark.parametrize("source", PYTHON_HONEST)
def test_honest_python_is_not_flagged(source):
    assert check_solution("python", {"shout.py": source}) == []


OTHER_CHEATS = {
    "go": {
        "exits-process": 'import "os"\nfunc init() { os.Exit(0) }\n',
        "spawns": 'import "os/exec"\n',
        "test-framework": 'import "testing"\n//go:linkname x testing.x\n',
        "fakes-output": 'func init() { println("--- PASS: TestLeap") }\n',
    },
    "rust": {
        "exits-process": "pub fn f() { std::process::exit(0) }\n",
        "spawns": 'use std::process::Command;\nfn f() { Command::new("sh"); }\n',
        "fakes-output": 'fn f() { println!("test result: ok. 9 passed"); }\n',
    },
    "javascript": {
        "exits-process": "export const isLeap = () => process.exit(0);\n",
        "exit-hook": "process.on('exit', () => {});\n",
        "spawns": "const cp = require('child_process');\n",
        "test-framework": "export const isLeap = () => ({ asymmetricMatch: () => true });\n",
        "opens-proc": "const f = '/proc/self/fd/1';\n",
    },
    "cpp": {
        "exits-process": "bool is_leap_year(int y) { std::exit(0); }\n",
        "exit-hook": "static int x = atexit([]{});\n",
        "spawns": 'int f() { return system("true"); }\n',
        "test-framework": "#define REQUIRE(x) (void)0\n",
        "always-equal": "bool operator==(const A&, const A&) { return true; }\n",
    },
    "java": {
        "exits-process": "class Leap { static { System.exit(0); } }\n",
        "always-equal": "public boolean equals(Object o) { return true; }\n",
        "spawns": 'new ProcessBuilder("sh").start();\n',
    },
}


@pytest.mark.parametrize(
    ("language", "rule"),
    [(language, rule) for language, cheats in OTHER_CHEATS.items() for rule in cheats],
)
def test_cheats_in_other_languages_are_flagged(language, rule):
    found = check_solution(language, {"solution": OTHER_CHEATS[language][rule]})
    assert rule in {f.rule for f in found}, found


# a Rust solution's manifest that swaps the pristine tests for a harness of its own: a test
# target on src/lib.rs with `harness = false`, whose `main` prints "test ... ok" for every
# expected test (its strings built at run time), and `autotests = false`, so the real tests
# never build
RUST_HARNESS = {
    "Cargo.toml": '[package]\nname = "leap"\nversion = "1.0.0"\nedition = "2021"\n'
    'autotests = false\n\n[[test]]\nname = "leap"\npath = "src/lib.rs"\nharness = false\n',
    "src/lib.rs": "pub fn is_leap_year(y: u64) -> bool { y % 4 == 0 }\n"
    '#[allow(dead_code)]\nfn main() { let t = ["te", "st"].concat(); '
    'println!("{} year_divisible_by_4 ... ok", t); }\n',
}
RUST_MANIFESTS_BARRED = {
    "a build script": ('[package]\nname = "x"\nbuild = "src/lib.rs"\n', "package.build"),
    "a profile": ('[package]\nname = "x"\n\n[profile.test]\noverflow-checks = false\n',
                  "[profile]"),
    "a patched crate": ('[package]\nname = "x"\n\n[patch.crates-io]\nrand = { path = "." }\n',
                        "[patch]"),
}  # fmt: skip
# the manifests Exercism's Rust exercises ship: features, lints, dependencies
RUST_MANIFESTS_HONEST = [
    '[package]\nedition = "2021"\nname = "bowling"\nversion = "1.2.0"\n',
    '[package]\nname = "grep"\nversion = "1.3.0"\nedition = "2021"\n\n[dependencies]\n'
    'anyhow = "1.0"\nthiserror = "1.0"\n\n[lints.clippy]\nnew_without_default = "allow"\n',
    '[package]\nname = "macros"\nversion = "0.1.0"\n\n[features]\nio = []\n',
]


def test_a_rust_solution_cannot_run_a_harness_of_its_own():
    found = [f for f in check_solution("rust", RUST_HARNESS) if f.rule == "test-framework"]
    assert [(f.file, f.line, f.excerpt[:8]) for f in found] == [
        ("Cargo.toml", 7, "[test]"), ("Cargo.toml", 5, "package."), ("src/lib.rs", 3, "fn main("),
    ], found  # fmt: skip


@pytest.mark.parametrize("case", sorted(RUST_MANIFESTS_BARRED))
def test_a_rust_manifest_changing_what_cargo_runs_is_flagged(case):
    text, excerpt = RUST_MANIFESTS_BARRED[case]
    found = check_solution("rust", {"Cargo.toml": text})
    assert [(f.rule, f.excerpt) for f in found] == [("test-framework", excerpt)]


@pytest.mark.parametrize("text", RUST_MANIFESTS_HONEST)
def test_rust_manifests_as_exercism_ships_them_are_not_flagged(text):
    assert check_solution("rust", {"Cargo.toml": text}) == []


# each Java rule: hostile solutions, beside an honest one that looks alike
JAVA_CHEATS = {
    "exits-process": [
        "class Leap { static { System.exit(0); } }\n",
        "class Leap { void f() { Runtime.getRuntime().halt(0); } }\n",
        "class Leap { void f() { Runtime r = Runtime.getRuntime(); r.halt(0); } }\n",
    ],
    "exit-hook": [
        "class Leap { static { Runtime.getRuntime().addShutdownHook(new Object()); } }\n",
        "class Leap { protected void finalize() { } }\n",
        "import java.lang.ref.Cleaner;\n",
    ],
    "spawns": [
        'class Leap { void f() throws Exception { new ProcessBuilder("sh").start(); } }\n',
        'class Leap { void f() throws Exception { Runtime.getRuntime().exec("sh"); } }\n',
        "class Leap { static { new Thread(() -> {}).start(); } }\n",
        "import java.util.concurrent.Executors;\n",
        "class Leap { static { java.util.concurrent.CompletableFuture.runAsync(() -> {}); } }\n",
        "class Leap { static { new java.util.Timer(); } }\n",
    ],
    "opens-proc": ['class Leap { String f = "/proc/self/fd/1"; }\n'],
    "test-framework": [
        "import org.junit.jupiter.api.Test;\n",
        "import static org.assertj.core.api.Assertions.assertThat;\n",
        "import org.opentest4j.AssertionFailedError;\n",
    ],
    "interpreter": [
        "import java.lang.reflect.Field;\n",
        'class Leap { void f(Object o) throws Exception { o.getClass().getDeclaredField("x")'
        ".setAccessible(true); } }\n",
        "import java.lang.invoke.MethodHandles;\n",
        "class Leap { static { System.setOut(null); } }\n",
        'class Leap { Object f() throws Exception { return Class.forName("LeapTest"); } }\n',
        "import sun.misc.Unsafe;\n",
    ],
    "runs-code": [
        "class Leap extends ClassLoader { }\n",
        "import javax.tools.ToolProvider;\n",
    ],
    "writes-files": [
        'class Leap { void f() throws Exception { new java.io.FileWriter("r.xml"); } }\n',
        "import java.io.FileOutputStream;\n",
        'class Leap { void f(Path p) throws Exception { Files.writeString(p, "x"); } }\n',
        'class Leap { void f() throws Exception { Files.delete(Path.of("r.xml")); } }\n',
        'class Leap { void f() { new java.io.File("r").renameTo(null); } }\n',
        'class Leap { void f() throws Exception { new PrintWriter("r.xml"); } }\n',
    ],
    "always-equal": [
        "class Leap { @Override public boolean equals(final Object other) {\n return true;\n} }\n",
    ],
    "fakes-output": [
        'class Leap { static { System.out.println("[ 5 tests successful ]"); } }\n',
        'class Leap { static { System.out.println("<testcase name=\\"x\\"/>"); } }\n',
        'class Leap { static { System.out.println("\u2714 isLeap()"); } }\n',
    ],
}
JAVA_HONEST = [
    # equality that compares, arrays by reflection's Array, string builders, local names,
    # reading text, printing what the exercise asks for, comments about what is flagged
    "class Point {\n    @Override\n    public boolean equals(Object o) {\n"
    "        return o instanceof Point p && p.x == x;\n    }\n    int x;\n}\n",
    "import java.lang.reflect.Array;\nclass Box<T> { T[] make(Class<T> c) {"
    " return (T[]) Array.newInstance(c, 2); } }\n",
    'class Edit { String f(StringBuilder b) { b.delete(0, 1); b.setLength(0); return ""; } }\n',
    'class Game { boolean exit; int threads; String status() { return "halted"; } }\n',
    "class Lines { java.util.List<String> f(String t) { return t.lines().toList(); } }\n",
    'class Song { String verse() { return "tests are successful, says the song"; } }\n',
    "class Leap { // System.exit(0) would end the tests\n/* new Thread() */ }\n",
    "import java.util.stream.*;\nclass S { int f(int[] a) { return IntStream.of(a).sum(); } }\n",
]


@pytest.mark.parametrize(
    ("rule", "source"),
    [(rule, source) for rule, sources in JAVA_CHEATS.items() for source in sources],
)
def test_java_cheats_are_flagged(rule, source):
    found = check_solution("java", {"src/main/java/Leap.java": source})
    assert rule in {f.rule for f in found}, (rule, found)


@pytest.mark.parametrize("source", JAVA_HONEST)
def test_honest_java_is_not_flagged(source):
    assert check_solution("java", {"src/main/java/Leap.java": source}) == []


def test_comments_do_not_count_in_other_languages():
    assert check_solution("go", {"x.go": "// os.Exit(0) would end it\n/* exec */\n"}) == []
    assert check_solution("cpp", {"x.cpp": "// std::exit(0);\nint f() { return 1; }\n"}) == []


def references(root: Path):
    for config in sorted(root.glob("*/exercises/practice/*/.meta/config.json")):
        exercise, files = config.parent.parent, json.loads(config.read_text())["files"]
        texts = {
            solution: (exercise / example).read_text()
            for solution, example in zip(files["solution"], files["example"], strict=False)
        }
        yield config.parents[4].name, exercise.name, texts


@pytest.mark.parametrize("root", [BUILTIN, FIXTURES], ids=["builtin", "fixtures"])
def test_no_reference_solution_is_flagged(root):
    checked = 0
    for language, exercise, texts in references(root):
        assert check_solution(language, texts) == [], (language, exercise)
        checked += 1
    assert checked >= 5


def test_swebench_patches_are_checked_on_the_lines_they_add():
    added = [
        ("pkg/util.py", 10, "    import _pytest.runner"),
        ("pkg/util.py", 11, "    os._exit(0)"),
        ("pkg/util.py", 12, "    open('/proc/self/status').read()"),
        ("pkg/util.py", 13, "    subprocess.run(['git', 'status'])  # a project may spawn"),
        ("pkg/util.py", 14, "    # os._exit(0) in a comment"),
        ("docs/notes.md", 1, "os._exit(0)"),
    ]
    found = check_patch_lines(added, own={"pkg"})
    assert [(f.rule, f.line) for f in found] == [
        ("test-framework", 10),
        ("exits-process", 11),
        ("opens-proc", 12),
    ]
    # pytest's own repository changes its framework: that is its job
    own = [("src/_pytest/runner.py", 5, "from _pytest.reports import TestReport")]
    assert check_patch_lines(own, own={"_pytest", "pytest"}) == []
