"""Settings from arguments and environment (`mmlab.config`): the base URL and where the
database lives."""

from __future__ import annotations

import pytest

from mmlab import Lab
from mmlab.errors import ConfigError


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://x/v1", "http://", "http://h:99999/v1", "http://h/v1?x=1", ""]
)
def test_malformed_base_url_is_a_config_error(url, db):
    with pytest.raises(ConfigError):
        Lab(base_url=url, db=db, quiet=True)


def test_default_db_is_in_the_data_dir_not_the_cwd(standin, isolated_env, monkeypatch):
    lab = Lab(base_url=standin.url, quiet=True)
    assert str(lab.engine.store.path).startswith(str(isolated_env / "home" / "data"))
    project = isolated_env / "work" / ".mmlab"
    project.mkdir()
    assert Lab(base_url=standin.url, quiet=True).db == project / "mmlab.db"
    monkeypatch.setenv("MMLAB_DB", str(isolated_env / "chosen.db"))
    assert Lab(base_url=standin.url, quiet=True).db == isolated_env / "chosen.db"
