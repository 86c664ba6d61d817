import pytest

from core.uploads import UploadError, max_upload_bytes, safe_filename, save_content_addressed, save_upload


@pytest.mark.parametrize("given, expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("my paper (v2).pdf", "my paper (v2).pdf"),
    ("日本語 論文.pdf", "日本語 論文.pdf"),
    (".bashrc", "bashrc"),
    ("a\x00b\n.pdf", "ab.pdf"),
    ("   ", "upload"),
])
def test_safe_filename(given, expected):
    assert safe_filename(given) == expected


def test_saved_upload_stays_in_its_folder(tmp_path):
    folder = tmp_path / "uploads" / "c"
    path = save_upload(folder, "../../../outside.txt", b"hello")
    assert path.parent == folder.resolve() and path.read_bytes() == b"hello"
    assert not (tmp_path / "outside.txt").exists()


def test_limit_matches_streamlit_config_and_is_enforced(tmp_path):
    assert max_upload_bytes() == 50 * 1024 * 1024  # .streamlit/config.toml server.maxUploadSize
    with pytest.raises(UploadError, match=r"big.pdf: 50.0 MB is over the 50 MB upload limit"):
        save_upload(tmp_path, "big.pdf", b"x" * (max_upload_bytes() + 1))
    assert list(tmp_path.iterdir()) == []


def test_discard_removes_only_an_upload_inside_its_folder(tmp_path):
    from core.uploads import discard

    inside = save_content_addressed(tmp_path / "datasets", "bad.csv", b"\x00\x01")
    outside = tmp_path / "sample.csv"
    outside.write_text("text,label\n")
    discard(tmp_path / "datasets", inside)
    discard(tmp_path / "datasets", outside)
    assert not inside.exists() and outside.exists()
