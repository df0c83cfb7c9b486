"""Guarantee 6: with passwords on PostgreSQL and Redis and AWS keys in the environment, no secret reaches any byte
of any file of any run folder of any notebook; query text in artifacts has its literals masked.

Also (issue 11): secrets from service files, URL queries and AWS profiles are scrubbed, post-mortem text too (6a);
secret-looking parameters are refused (6b); the production password is sent only to the production server (6c);
every literal and comment is masked by PostgreSQL's own lexer (6d)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from urllib.parse import quote

import psycopg
import pytest
from helpers import read_summary
from hypothesis import given, settings
from hypothesis import strategies as st
from secret_scan import assert_no_secrets, find_secrets

from imsnb import config
from imsnb.errors import BadParameter
from imsnb.runs.catalogue import list_notebooks
from imsnb.runs.execute import run_notebook
from imsnb.runs.suite import run_suite

EMAIL = "leak.check@example.org"
# The statements in flight run on the session's sandbox while notebooks run, and outlive any test: each is cancelled
# at teardown, so pg_stat_statements never records it. One that completed would stay there as a slow statement and
# turn later tests' postgres.slow_queries CRITICAL (a pg_sleep(120) did, when the every-notebook run took 144 s).
IN_FLIGHT_S = 3600
LITERAL_QUERY = f"SELECT pg_sleep({IN_FLIGHT_S}), count(*) FROM orders WHERE email = '{EMAIL}'"  # a literal, on purpose
AWKWARD = "Zq\"8<k>&'p\\w%4 tok"


def test_the_scan_finds_secrets_in_every_encoding():
    secret = "s3cr3t-Value_42xyz"
    for text in (
        f"x{secret}y".encode(),
        base64.b64encode(b"\x89PNG..." + secret.encode() + b"...tail"),
        base64.b64encode(b"ab" + secret.encode() + b"c"),
        base64.urlsafe_b64encode(b"a" + secret.encode()),
        secret.encode().hex().encode(),
    ):
        assert find_secrets([text], [secret]), text
    assert find_secrets([b"nothing here"], [secret]) == []


@pytest.fixture
def literal_in_flight(degraded):
    """A statement carrying an email literal, running (so pg_stat_activity shows its text) during the runs."""
    conn = degraded.postgres.connect("ims-report", autocommit=True)
    outcome: list[str] = []
    worker = threading.Thread(target=_quietly, args=(conn, LITERAL_QUERY, outcome), daemon=True)
    worker.start()
    with degraded.postgres.admin("ims") as admin:
        for _ in range(100):
            if admin.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE %s", (f"%{EMAIL}%",)).fetchone():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the literal statement never started")
    yield
    _cancel(conn, worker, outcome)


def _quietly(conn: psycopg.Connection, query: str, outcome: list[str]) -> None:
    try:
        conn.execute(query)
        outcome.append("completed")
    except psycopg.errors.QueryCanceled:
        outcome.append("cancelled")
    except psycopg.Error as exc:
        outcome.append(f"failed: {exc}")


def _cancel(conn: psycopg.Connection, worker: threading.Thread, outcome: list[str]) -> None:
    """Cancel a statement in flight, and fail here if it was not cancelled: one that completed is in the session
    sandbox's pg_stat_statements for every later test of this worker."""
    conn.cancel_safe(timeout=5)
    worker.join(timeout=10)
    conn.close()
    assert outcome == ["cancelled"], f"the statement in flight was not cancelled by the teardown: {outcome}"


def test_no_secret_in_any_run_folder_of_any_notebook(degraded, literal_in_flight, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAFANA_TOKEN", AWKWARD)  # a secret with every character that has an escaped spelling
    monkeypatch.setenv("REDIS_URL", f"redis://:{degraded.redis.password}@127.0.0.1:{degraded.redis.port}/0")
    secrets = set(config.secret_values()) | {degraded.postgres.password, degraded.redis.password}
    secrets |= {degraded.aws.secret_key, "AKIAIMSNBSANDBOX0000", AWKWARD}
    names = [info.name for info in list_notebooks()]  # as one suite, two at a time: what `imsnb suite` writes
    results = run_suite(names, {"window": "30m"}, incident_id="INC-SECRETS", outputs=tmp_path, jobs=2)
    for name, result in zip(names, results, strict=True):
        assert read_summary(result.folder)["status"] == "ok", (name, result.summary.get("error"))
    folders = [result.folder for result in results]
    assert len(folders) == len(list_notebooks()) >= 11
    scanned = assert_no_secrets(folders, secrets)
    assert scanned > 1_000_000  # every notebook, report and summary, charts included

    db_run = next(f for f in folders if f.name.endswith("-db_performance"))
    every = b"".join(p.read_bytes() for p in db_run.iterdir())
    assert EMAIL.encode() not in b"".join(p.read_bytes() for f in folders for p in f.iterdir())
    assert b"WHERE email = ?" in every  # the statement is shown, its literal replaced by a placeholder

    # The same runs, archived to S3 (the moto server): every byte of every uploaded object is scanned too.
    from imsnb import archive

    s3 = degraded.aws.client("s3")
    s3.create_bucket(Bucket="ims-secret-scan")
    keys = archive.upload("s3://ims-secret-scan/runs", folders, tmp_path / "INC-SECRETS")
    objects = [s3.get_object(Bucket="ims-secret-scan", Key=key)["Body"].read() for key in keys]
    assert len(objects) == len(keys) >= 3 * len(folders)
    assert assert_no_secrets(objects, secrets) == sum(len(o) for o in objects)


# ---------------------------------------------------------------- query text: every literal masked (issue 11.6)

MARK = "zqj"  # in every planted literal; in no keyword or identifier below
WORDS = ["SELECT", "FROM", "WHERE", "AND", "OR", "t", "col", "orders", "=", "<", "(", ")", ",", "+", "$1", '"o\'br"']


@pytest.mark.parametrize(
    ("sql", "masked"),
    [
        ("SELECT * FROM cards WHERE pan = 4111_1111_1111_1111", "SELECT * FROM cards WHERE pan = ?"),
        ("SELECT 0xDEADBEEF, 0o17, 0b101, .5, 5., 1.5e-3", "SELECT ?, ?, ?, ?, ?, ?"),
        ("SELECT 1 /* a /* b */ hunter2 */ FROM t", "SELECT ? /* ? */ FROM t"),
        ("SELECT 1 /* a /* b */ hunter2 cut off", "SELECT ? ?"),
        ("SELECT n'x', U&'d\\0061t', B'101', X'1F'", "SELECT ?, ?, ?, ?"),
        ("SELECT 1abc, 'hunter2'", "SELECT ?"),  # junk after a number: the lexer stops, the rest is masked
        ("SELECT 'a\\' hunter2 '", "SELECT ?"),  # a backslash in a plain string: masked to the end
        ("SELECT $1, $tag$ hunter2 $tag$", "SELECT $1, ?"),
        # a setting's value is data even as a bare word or a quoted identifier (pg_stat_statements keeps SET verbatim)
        ("SET app.api_key TO SetIdentSecret_Si16", "SET app.api_key TO ?"),
        ('set local app.token = "hunter2"; SELECT 1', "set local app.token = ?; SELECT ?"),
        ("ALTER ROLE ims SET app.key = hunter2, other_word", "ALTER ROLE ims SET app.key = ?, ?"),
        ("UPDATE t SET n = n + 1 WHERE id = 5", "UPDATE t SET n = n + ? WHERE id = ?"),  # columns stay readable
        ("SET ROLE reporting", "SET ROLE reporting"),
        ("/* app:svc */ SET app.api_key TO hunter2", "/* ? */ SET app.api_key TO ?"),  # a comment before the SET
        ("SELECT 1; -- c\nSET app.api_key = hunter2", "SELECT ?; -- ?\nSET app.api_key = ?"),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET app.key = hunter2 AS $$ SELECT 1 $$",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET app.key = ? AS ?",
        ),
        ("ALTER TABLE t SET (fillfactor = 70), SET SCHEMA s", "ALTER TABLE t SET (fillfactor = ?), SET SCHEMA s"),
    ],
)
def test_query_text_has_every_literal_and_comment_masked(sql, masked):
    from imsnb.postgres import mask_literals

    assert mask_literals(sql) == masked


def test_an_application_name_holding_a_password_is_not_shown():
    """application_name is set by the client, and a connection string's habit puts `password=` in it: the
    activity and lock tables showed it verbatim. A name without a secret stays, as it names the service."""
    import pandas as pd

    from imsnb.postgres.literals import masked

    frame = pd.DataFrame(
        {
            "query": ["SELECT 1", "SELECT 2"],
            "application": ["svc password=AppNameSecret_An15", "ims-backend"],
            "blocking_application": ["postgresql://u:AppNameSecret_An16@db/ims", None],
        }
    )
    shown = masked(frame, "query").fillna("none").to_dict("records")
    assert shown == [
        {"query": "SELECT ?", "application": "********", "blocking_application": "********"},
        {"query": "SELECT ?", "application": "ims-backend", "blocking_application": "none"},
    ]


def _quoted(body: str) -> str:
    return "'" + body.replace("'", "''") + "'"


_BODY = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12).map(
    lambda text: MARK + text
)
_PLAIN = st.text(st.sampled_from("abcdefgh xyz019-_.,;:!?()#@%^&{}[]<>|~`\"'\n\t"), max_size=12).map(
    lambda text: MARK + text
)
_DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=6)
LITERALS = st.one_of(
    _BODY.map(_quoted),
    _BODY.map(lambda b: "E'" + b.replace("\\", "\\\\").replace("'", "\\'") + "'"),
    _BODY.filter(lambda b: "\\" not in b).map(lambda b: "U&" + _quoted(b)),
    st.tuples(st.sampled_from(["", "q", "tag_1"]), _PLAIN.filter(lambda b: "$" not in b)).map(
        lambda tb: f"${tb[0]}${tb[1]}${tb[0]}$"
    ),
    st.lists(_DIGITS, min_size=1, max_size=4).map("_".join),  # 4111_1111_1111_1111
    st.integers(0, 2**70).map(lambda n: f"0x{n:X}" if n % 2 else f"0X{n:x}"),
    st.integers(0, 2**40).map(oct),
    st.integers(0, 2**40).map(bin),
    st.tuples(_DIGITS, _DIGITS).map(lambda ab: f"{ab[0]}.{ab[1]}"),
    _DIGITS.map(lambda d: f".{d}"),
    st.tuples(_DIGITS, st.sampled_from(["e", "E-", "e+"]), _DIGITS).map("".join),
    st.text(st.sampled_from("01"), max_size=16).map(lambda b: f"B'{b}'"),
    st.text(st.sampled_from("0123456789abcdefABCDEF"), max_size=16).map(lambda x: f"X'{x}'"),
    _BODY.map(lambda b: "N" + _quoted(b)),
    _PLAIN.filter(lambda b: "*" not in b and "/" not in b).map(lambda b: f"/* a /* {b} */ {b} */"),
    _PLAIN.map(lambda b: "-- " + b.replace("\n", " ") + "\n"),
)


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(st.one_of(st.sampled_from(WORDS), LITERALS), min_size=1, max_size=12),
    separators=st.lists(st.sampled_from([" ", "\n", "  ", "\t"]), min_size=12, max_size=12),
    cut=st.none() | st.integers(1, 400),
)
def test_no_planted_literal_survives_masking(parts, separators, cut):
    """Random statements with planted literals of every kind PostgreSQL has, whole or cut off (as
    track_activity_query_size cuts them): no planted text, and no digit outside a $n placeholder, survives."""
    from imsnb.postgres import mask_literals

    sql = "".join(part + sep for part, sep in zip(parts, separators, strict=False))
    if cut is not None:
        sql = sql[:cut]
    masked = mask_literals(sql)
    visible = re.sub(r"\$\d+", "", masked)
    assert MARK not in masked.lower() and not re.search(r"\d", visible), (sql, masked)
    if cut is None:  # whole statements: what is left is the words, placeholders and masks
        leftovers = set(masked.replace("/* ? */", " ").replace("-- ?", " ").split()) - set(WORDS) - {"?"}
        assert not leftovers, (sql, masked)


# ---------------------------------------------------------------- secrets in parameters (issue 11.3)

SECRET_KEYS = ["password", "PASSWORD", "sslpassword", "passfile", "pass%77ord", "token", "api_key", "client_secret"]
SECRET_KEYS += ["X-Amz-Security-Token", "X-Amz-Signature", "access_key", "auth_token"]
BENIGN_KEYS = ["sslmode", "application_name", "connect_timeout", "target_session_attrs", "db", "options", "user"]
_VALUE = st.text(st.sampled_from("abcXYZ019-_.%~!*"), min_size=1, max_size=12)


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://admin@db/ims?password=hunter2secret",
        "postgresql://admin@db/ims?sslmode=require&sslpassword=hunter2secret",
        "postgres://db/ims?passfile=/home/x/.pgpass",
        "host=db dbname=ims user=admin sslpassword=hunter2secret",
        "host=db dbname=ims passfile=/home/x/.pgpass",
        "host=db dbname=ims user=admin password = 'hunter2secret'",
    ],
)
def test_a_password_in_verify_conninfo_is_refused_before_a_kernel_starts(value, tmp_path, capsys):
    from imsnb.cli import main

    outputs = tmp_path / "outputs"
    code = main(["run", "point_in_time_recovery", "-p", "verify_conninfo", value, "--outputs", str(outputs)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "verify_conninfo" in err, err
    assert "hunter2secret" not in err
    assert not outputs.exists()


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["postgresql", "postgres", "redis", "rediss", "https", "s3"]),
    host=st.sampled_from(["db", "10.0.0.5:5432", "admin@db", "[::1]:6379", "db1,db2"]),
    path=st.sampled_from(["", "/", "/ims", "/0"]),
    benign=st.lists(st.tuples(st.sampled_from(BENIGN_KEYS), _VALUE), max_size=4),
    secret=st.tuples(st.sampled_from(SECRET_KEYS), _VALUE.map(lambda v: "Zk9" + v)),
    at=st.integers(0, 4),
    separator=st.sampled_from(["&", ";"]),
)
def test_any_url_with_a_secret_query_key_is_refused(scheme, host, path, benign, secret, at, separator):
    from imsnb.errors import BadParameter
    from imsnb.runs.catalogue import find_notebook, load_info
    from imsnb.runs.parameters import validate

    pairs = list(benign)
    pairs.insert(min(at, len(pairs)), secret)
    url = f"{scheme}://{host}{path}?" + separator.join(f"{k}={v}" for k, v in pairs)
    info = load_info(find_notebook("point_in_time_recovery"))
    with pytest.raises(BadParameter) as refused:
        validate(info, {"verify_conninfo": url})
    assert "\n" not in str(refused.value) and secret[1] not in str(refused.value)
    clean = f"{scheme}://{host}{path}?" + separator.join(f"{k}={v}" for k, v in benign)
    assert validate(info, {"verify_conninfo": clean}) == {"verify_conninfo": clean}  # no secret: accepted


# ---------------------------------------------------------------- the production password stays home (issue 11.4)


@pytest.fixture
def pgpass(monkeypatch, tmp_path):
    """A private PGPASSFILE (so the machine's ~/.pgpass plays no part); returns a function adding lines to it."""
    path = tmp_path / "pgpass"
    path.write_text("")
    path.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(path))
    monkeypatch.delenv("PGSERVICE", raising=False)
    return lambda line: path.write_text(path.read_text() + line + "\n")


def _login(settings: dict[str, str]) -> str:
    from imsnb import postgres
    from imsnb.errors import Unreachable

    database = postgres.Database("secret-scan", settings=settings, connect_timeout_s=5)
    try:
        return str(database.scalar("SELECT current_user"))
    except Unreachable as exc:
        return f"refused: {exc}"
    finally:
        database.close()


def test_verify_conninfo_naming_another_server_never_gets_the_production_password(degraded, pgpass):
    from password_listener import PasswordListener

    production = degraded.postgres.password
    assert config.postgres_settings()["password"] == production  # DB_PASSWORD and PGPASSWORD are both set
    with PasswordListener() as listener:
        for conninfo in (
            f"host=127.0.0.1 port={listener.port} dbname=ims user=ims",
            f"postgresql://ims@127.0.0.1:{listener.port}/ims",
            f"host=localhost port={listener.port} dbname=ims",
        ):
            assert "no password supplied" in _login(config.postgres_settings_for(conninfo)), conninfo
        pgpass(f"127.0.0.1:{listener.port}:*:*:listener-own-secret")
        assert "authentication failed" in _login(config.postgres_settings_for(f"host=127.0.0.1 port={listener.port}"))
        time.sleep(0.2)
    assert listener.passwords == [None, None, None, "listener-own-secret"], listener.received
    # The configured server (named in the conninfo, or implied) and a caller-resolved endpoint still get it.
    assert _login(config.postgres_settings_for(f"host=127.0.0.1 port={degraded.postgres.port} dbname=ims")) == "ims"
    assert _login(config.postgres_settings_for("dbname=ims")) == "ims"
    assert _login(config.postgres_settings_for("", host="127.0.0.1", port=degraded.postgres.port)) == "ims"
    for refused in ("service=prod", f"host=127.0.0.1 port={listener.port} passfile=/tmp/x", "sslpassword=x"):
        with pytest.raises(BadParameter):
            config.postgres_settings_for(refused)


def test_point_in_time_recovery_sends_another_server_only_its_own_pgpass_entry(degraded, pgpass, tmp_path):
    """End to end: `-p verify_conninfo` naming a server of the caller's choosing; the kernel's libpq sends it the
    .pgpass line for that server, never DB_PASSWORD / PGPASSWORD."""
    from password_listener import PasswordListener

    with PasswordListener() as listener:
        pgpass(f"127.0.0.1:{listener.port}:ims:ims:listener-own-secret")
        parameters = {"verify_conninfo": f"host=127.0.0.1 port={listener.port} dbname=ims user=ims"}
        parameters["verify_tables"] = "orders=1"
        result = run_notebook("point_in_time_recovery", parameters, incident_id="INC-PGPASS", outputs=tmp_path)
        time.sleep(0.2)
    assert listener.received, "the notebook never tried the named server"
    assert set(listener.passwords) == {"listener-own-secret"}, listener.received
    assert degraded.postgres.password not in str(listener.received)
    summary = read_summary(result.folder)
    (finding,) = [f for f in summary["findings"] if f["check"] == "postgres.reachable"]
    assert finding["severity"] == "CRITICAL" and "authentication failed" in finding["message"]


# ---------------------------------------------------------------- every secret source is scrubbed (issue 11.5)

SERVICE_SECRET = "svc-Pw_8f3kQ2"
AWS_SECRET_KEY = "aws/Sk+9TqL2mV7xR4nB8cW1zY6pD3fH5jK0gA"
AWS_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEtok+en/Zz9Q=="


@pytest.fixture
def secret_sources(degraded, monkeypatch, tmp_path):
    """Secrets imsnb can only know from where they live: a PGSERVICEFILE service, REDIS_URL's ?password= (the
    real Redis password, with REDIS_PASSWORD unset), and an ~/.aws/credentials profile (not the one in use)."""
    service = tmp_path / "pg_service.conf"
    service.write_text(f"[ims-replica]\nhost=replica.internal\ndbname=ims\nuser=ims\npassword={SERVICE_SECRET}\n")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        "[incident-responder]\naws_access_key_id = ASIAIMSNBSCANTEST000\n"
        f"aws_secret_access_key = {AWS_SECRET_KEY}\naws_session_token = {AWS_SESSION_TOKEN}\n"
    )
    redis = degraded.redis
    monkeypatch.setenv("PGSERVICEFILE", str(service))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("REDIS_PASSWORD", "REDIS_HOST", "REDIS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{redis.port}/0?password={quote(redis.password, safe='')}")
    return [SERVICE_SECRET, redis.password, AWS_SECRET_KEY, AWS_SESSION_TOKEN]


@pytest.fixture
def identifiers_in_flight(degraded, secret_sources):
    """A running statement whose column aliases are those secrets: quoted identifiers are not literals, so the
    query text shown by db_performance carries them and only the scrubber stands between them and the artifacts."""
    aliases = ", ".join(f'{i} AS "{s.replace(chr(34), chr(34) * 2)}"' for i, s in enumerate(secret_sources))
    marker = "imsnb_scan_marker"
    query = f"SELECT {aliases}, pg_sleep({IN_FLIGHT_S}) AS {marker}"
    conn = degraded.postgres.connect("ims-report", autocommit=True)
    outcome: list[str] = []
    worker = threading.Thread(target=_quietly, args=(conn, query, outcome), daemon=True)
    worker.start()
    with degraded.postgres.admin("ims") as admin:
        for _ in range(100):
            if admin.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE %s", (f"%{marker}%",)).fetchone():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the statement never started")
    yield secret_sources
    _cancel(conn, worker, outcome)


def test_service_file_redis_url_query_and_aws_profile_secrets_are_scrubbed(degraded, identifiers_in_flight, tmp_path):
    from imsnb import archive

    secrets = identifiers_in_flight
    result = run_notebook("db_performance", {"window": "30m"}, incident_id="INC-SOURCES", outputs=tmp_path)
    assert read_summary(result.folder)["status"] == "ok"
    assert_no_secrets([result.folder], secrets)
    notebook = (result.folder / "notebook.ipynb").read_bytes()
    assert b'AS \\"********\\"' in notebook  # the statement is shown: the secrets reached the output, scrubbed

    incident = tmp_path / "INC-SOURCES"  # people paste things into the post-mortem
    (incident / archive.POSTMORTEM).write_text(
        json.dumps(
            {
                "root_cause": f"replica password {SERVICE_SECRET} was rotated; redis {secrets[1]}",
                "action_items": [f"rotate {AWS_SECRET_KEY}", f"revoke {AWS_SESSION_TOKEN}"],
                "ticket": "OPS-1",
            }
        )
    )
    archive.write_index(incident)
    index = (incident / archive.INDEX).read_text()
    assert "replica password ******** was rotated" in index and "OPS-1" in index

    s3 = degraded.aws.client("s3")
    s3.create_bucket(Bucket="ims-secret-sources")
    keys = archive.upload("s3://ims-secret-sources/runs", [result.folder], incident)
    objects = [s3.get_object(Bucket="ims-secret-sources", Key=key)["Body"].read() for key in keys]
    assert any(key.endswith("/index.html") for key in keys)
    assert_no_secrets([result.folder, incident / archive.INDEX, *objects], secrets)
    assert set(secrets) <= set(config.secret_values())
