"""Evaluating a collection (core.rag.evaluate): the QA file, the measures on the bundled SQuAD
sample (real MiniLM, BM25 and embedded Chroma), the CLI against the Evaluate page (AppTest), and
saved runs offered for comparison."""

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.errors import InputError
from core.rag.evaluate import (
    EvalConfig,
    f1,
    list_runs,
    load_run,
    parse_qa,
    read_qa,
    run_evaluation,
    summarise,
    supported,
)
from core.samples import SAMPLE_QA, SAMPLE_QA_COLLECTION, load_qa_sample
from core.settings import PROJECT_ROOT, load_settings


# The QA file ------------------------------------------------------------------------------
def test_csv_and_jsonl_give_the_same_items(tmp_path):
    csv_text = ("question,answer,document\n"
                '"Where is Normandy?",France,normans-00.txt\n'
                "\n"
                "Who won?,,\n")
    jsonl_text = ('{"question": "Where is Normandy?", "answer": "France", '
                  '"document": "normans-00.txt"}\n\n{"question": "Who won?", "answer": ""}\n')
    from_csv, from_jsonl = parse_qa(csv_text, "qa.csv"), parse_qa(jsonl_text, "qa.jsonl")
    assert from_csv == from_jsonl
    assert from_csv[0].document == "normans-00.txt" and from_csv[1].answer == ""
    path = tmp_path / "qa.csv"
    path.write_text("\ufeffQuestion,Answer\nWhere?,Here\n", encoding="utf-8")  # BOM, any case
    assert [(i.question, i.answer, i.document) for i in read_qa(path)] == [("Where?", "Here", "")]
    assert len(read_qa(SAMPLE_QA)) == 16


@pytest.mark.parametrize(("text", "message"), [
    ('{"question": "a", "answer": "b"}\n{"question": "c", "answer": \n', "qa.txt, line 2: not JSON"),
    ('{"question": "a"}\n["a list"]\n', "qa.txt, line 2: not a JSON object"),
    ('{"question": "a"}\n{"answer": "b"}\n', "qa.txt, line 2: no question"),
    ('{"question": "a", "answer": 3}\n', "qa.txt, line 1: answer and document must be text"),
    ("query,answer\nwhat,that\n", "qa.txt, line 1: the header needs 'question' and 'answer'"),
    ("question,answer\nfine,yes\n,orphan answer\n", "qa.txt, line 3: no question"),
    ("question,answer\nfine,yes,extra\n", "qa.txt, line 2: more cells than columns"),
    ("question,answer\n", "qa.txt holds no question"),
])
def test_a_bad_file_is_refused_naming_the_file_and_line(text, message):
    with pytest.raises(InputError, match="^" + message.replace("[", r"\[")):
        parse_qa(text, "qa.txt")


def test_unreadable_file_is_an_input_error(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_bytes(b"question,answer\n\xff\xfe\n")
    with pytest.raises(InputError, match="qa.csv"):
        read_qa(path)


# The measures -----------------------------------------------------------------------------
def test_scores_follow_squads_normalisation():
    assert f1("The Normans [1].", ["normans"]) == 1.0
    assert f1("in France", ["France"]) == pytest.approx(2 / 3)
    assert f1("anything", []) == 0.0
    assert supported("William the Conqueror", ["...duke William, the conqueror, landed"])
    assert not supported("William the Conqueror", ["William was no conqueror"])
    assert not supported("", ["any chunk"])  # unanswerable: nothing to support


def test_summary_of_hand_made_rows():
    rows = [{"hit_rank": 1, "hit": True, "support": True, "f1": 1.0, "refused": False,
             "seconds": 1.0},
            {"hit_rank": 3, "hit": True, "support": False, "f1": 0.0, "refused": True,
             "seconds": 2.0},
            {"hit_rank": None, "hit": False, "support": None, "f1": None, "refused": True,
             "seconds": 3.0},
            {"hit_rank": None, "hit": None, "support": None, "f1": None, "refused": False,
             "seconds": 6.0}]  # no document given: out of hit@1/@k
    assert summarise(rows, 3) == {"questions": 4, "hit@1": 0.333, "hit@3": 0.667,
                                  "support@3": 0.5, "answer_f1": 0.5, "refusal_rate": 0.5,
                                  "seconds": 3.0}


@pytest.fixture(scope="module")
def squad_sample(tmp_path_factory):
    """A data dir holding the SQuAD sample collection, loaded once for this module."""
    data = tmp_path_factory.mktemp("evaluation") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_DATA_DIR", str(data))
        for name in ("CHROMA_HOST", "CHROMA_PORT", "STUDIO_EMBEDDING_MODEL"):
            mp.delenv(name, raising=False)
        assert load_qa_sample(load_settings()).ok
        yield mp


def test_measures_on_the_squad_sample(squad_sample):
    settings = load_settings()
    items = read_qa(SAMPLE_QA)
    run = run_evaluation(settings, EvalConfig(SAMPLE_QA_COLLECTION, ("bm25", "dense"), k=3),
                         items)
    assert run["status"] == "done" and run["done"] == run["total"] == 32
    assert load_run(settings, run["id"])["summary"] == run["summary"]
    for method in ("bm25", "dense"):
        rows = [r for r in run["rows"] if r["method"] == method]
        assert [r["question"] for r in rows] == [i.question for i in items]
        for row, item in zip(rows, items):
            assert len(row["retrieved"]) == 3
            if item.document:  # hit: the named passage among the three retrieved
                assert row["hit"] == (item.document in row["retrieved"])
                assert row["hit_rank"] == (row["retrieved"].index(item.document) + 1
                                           if row["hit"] else None)
            else:
                assert row["hit"] is None and row["support"] is None
            assert row["answer"] is None and row["f1"] is None
        summary = run["summary"][method]
        with_doc = [r for r in rows if r["hit"] is not None]
        assert summary["hit@3"] == round(sum(r["hit"] for r in with_doc) / len(with_doc), 3)
        assert summary["answer_f1"] is None and summary["refusal_rate"] is None
    # "Who was the duke in the battle of Hastings?" names William the Conqueror's passage by
    # its words: keywords find it first.
    hastings = next(r for r in run["rows"] if r["method"] == "bm25" and "Hastings" in r["question"])
    assert hastings["hit_rank"] == 1 and hastings["support"]
    assert run["summary"]["bm25"]["hit@3"] >= 0.8  # 12 passages: retrieval should mostly work


def test_cli_json_equals_the_evaluate_page(squad_sample, capsys):
    assert main(["evaluate", "--collection", SAMPLE_QA_COLLECTION, "--qa", str(SAMPLE_QA),
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert set(cli["summary"]) == {"dense", "bm25", "hybrid"}

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    at = at.switch_page("app_pages/evaluate.py").run()
    at.selectbox(key="collection").set_value(SAMPLE_QA_COLLECTION).run()
    next(b for b in at.button if b.label == "Run evaluation").click().run()
    assert not at.exception
    page_run = at.session_state["evaluation-run"]
    deadline = time.time() + 120
    while load_run(load_settings(), page_run)["status"] == "running":
        assert time.time() < deadline
        time.sleep(0.5)
    at.run()
    assert not at.exception
    shown = at.dataframe[0].value.set_index("configuration")
    for method, numbers in cli["summary"].items():
        for measure in ("questions", "hit@1", "hit@3", "support@3"):
            assert shown.loc[method, measure] == numbers[measure], (method, measure)
    assert len(at.get("plotly_chart")) == 1
    per_question = at.dataframe[1].value
    assert len(per_question) == len(cli["rows"]) == 48


def test_saved_runs_are_listed_for_comparison(squad_sample):
    settings = load_settings()
    items = read_qa(SAMPLE_QA)[:3]
    first = run_evaluation(settings, EvalConfig(SAMPLE_QA_COLLECTION, ("bm25",), k=1), items)
    time.sleep(1.1)  # run ids start with the second they started in
    second = run_evaluation(settings, EvalConfig(SAMPLE_QA_COLLECTION, ("bm25",), k=2), items)
    listed = [r["id"] for r in list_runs(settings, SAMPLE_QA_COLLECTION)]
    assert listed.index(second["id"]) < listed.index(first["id"])  # newest first
    assert list_runs(settings, "another-collection") == []

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    at = at.switch_page("app_pages/evaluate.py").run()
    at.selectbox(key="collection").set_value(SAMPLE_QA_COLLECTION).run()
    at.selectbox(key="evaluation-run").set_value(second["id"]).run()
    compare = at.multiselect[-1]
    [offered] = [o for o in compare.options if first["id"] in o]
    assert "k = 1" in offered and "27 chunks" in offered
    compare.select(first["id"]).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["configuration"]) == [f"{second['id']} · bm25", f"{first['id']} · bm25"]


def test_a_missing_collection_is_refused_before_the_run_starts(squad_sample):
    from core.rag.evaluate import start_run
    from core.rag.store import StoreError

    settings = load_settings()
    before = list_runs(settings)
    with pytest.raises(StoreError):
        start_run(settings, EvalConfig("no-such-collection"), read_qa(SAMPLE_QA))
    assert list_runs(settings) == before


@pytest.mark.slow
def test_answers_are_scored_with_the_chat_model(squad_sample, tmp_path, capsys, monkeypatch):
    """The light chat model on one unanswerable and two answerable questions: F1 over the
    answerable ones, refusals over all, each row's answer kept."""
    monkeypatch.setenv("STUDIO_CHAT_MODEL", "smollm2-135m-instruct")
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(SAMPLE_QA.read_text().splitlines(keepends=True)[:3]))
    assert main(["evaluate", "--collection", SAMPLE_QA_COLLECTION, "--qa", str(qa),
                 "--methods", "bm25", "--answers", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    rows = cli["rows"]
    assert [r["answer"] is not None for r in rows] == [True] * 3
    assert rows[1]["f1"] is None  # unanswerable: no gold to score against
    answerable = [r["f1"] for r in rows if r["f1"] is not None]
    summary = cli["summary"]["bm25"]
    assert summary["answer_f1"] == round(sum(answerable) / 2, 3)
    assert summary["refusal_rate"] == round(sum(r["refused"] for r in rows) / 3, 3)
    assert load_run(load_settings(), cli["run"])["chat_model"]


def test_a_run_whose_process_died_reads_as_interrupted(squad_sample):
    from core import files
    from core.rag.evaluate import RUN_FILE, runs_dir

    settings = load_settings()
    run = run_evaluation(settings, EvalConfig(SAMPLE_QA_COLLECTION, ("bm25",)),
                         read_qa(SAMPLE_QA)[:1])
    path = runs_dir(settings) / run["id"] / RUN_FILE
    files.write_json(path, {**run, "status": "running", "pid": 2**22 + 1})  # no such process
    assert load_run(settings, run["id"])["status"] == "interrupted"
    files.write_json(path, {**run, "status": "running"})  # this process, no thread on it
    assert load_run(settings, run["id"])["status"] == "interrupted"


def test_the_page_says_what_is_wrong_with_an_uploaded_file(squad_sample):
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    at = at.switch_page("app_pages/evaluate.py").run()
    at.selectbox(key="collection").set_value(SAMPLE_QA_COLLECTION).run()
    at.radio[0].set_value("file").run()
    at.file_uploader[0].set_value([("mine.csv", b"question,answer\nfine,yes\n,no question\n",
                                    "text/csv")]).run()
    before = {r["id"] for r in list_runs(load_settings())}
    next(b for b in at.button if b.label == "Run evaluation").click().run()
    assert not at.exception
    assert any("mine.csv, line 3: no question" in e.value for e in at.error)
    assert {r["id"] for r in list_runs(load_settings())} == before


def test_the_sample_questions_are_offered_only_over_their_own_collection(studio_env):
    from core.rag import store

    store.open_collection(store.client(load_settings()), "papers", "all-minilm-l6-v2", 500, 50)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    at = at.switch_page("app_pages/evaluate.py").run()
    at.selectbox(key="collection").set_value("papers").run()
    assert not at.exception
    assert at.radio[0].options == ["A QA file"]  # its questions would all miss here
    assert any(SAMPLE_QA_COLLECTION in c.value for c in at.caption)
