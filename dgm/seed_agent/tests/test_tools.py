from tools import MAX_OUTPUT, Bash, Editor


def test_bash_keeps_its_state(tmp_path):
    bash = Bash(str(tmp_path))
    try:
        bash.run("mkdir sub && cd sub && export X=42")
        assert bash.run("pwd; echo $X") == f"{tmp_path}/sub\n42"
        assert bash.run("false") == "\n[exit code 1]"
        assert len(bash.run("yes | head -c 100000")) < MAX_OUTPUT + 100
    finally:
        bash.close()


def test_bash_times_out_and_recovers(tmp_path):
    bash = Bash(str(tmp_path), timeout_s=0.5)
    try:
        assert "timed out" in bash.run("sleep 5")
        assert bash.run("echo back") == "back"
    finally:
        bash.close()


def test_editor(tmp_path):
    editor = Editor(str(tmp_path))
    assert editor.run("create", "a.py", file_text="x = 1\ny = 2\n").startswith("created")
    assert editor.run("view", "a.py") == "     1\tx = 1\n     2\ty = 2"
    assert editor.run("str_replace", "a.py", old_str="x = 1", new_str="x = 3").startswith("edited")
    assert "occurs 0 times" in editor.run("str_replace", "a.py", old_str="nope", new_str="")
    editor.run("insert", "a.py", insert_line=1, new_str="z = 0")
    assert (tmp_path / "a.py").read_text() == "x = 3\nz = 0\ny = 2\n"
    editor.run("undo_edit", "a.py")
    editor.run("undo_edit", "a.py")
    assert (tmp_path / "a.py").read_text() == "x = 1\ny = 2\n"
    editor.run("undo_edit", "a.py")
    assert not (tmp_path / "a.py").exists()
    assert editor.run("view", ".") == ""
    assert editor.run("explode", "a.py").startswith("error: command must be")
    assert editor.run("insert", "b.py", line=3).startswith("error: bad arguments")
