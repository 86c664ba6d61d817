"""Clean page text and full chunks with titles and sections, over the real shared papers
extracted by the project's own extractor (real Tika)."""

import re
from functools import cache

import pytest

from core.rag.chunking import DEFAULT_CHUNK_SIZE, chunk_pages, contextual_text, sentence_spans
from core.rag.extract import extract
from core.rag.layout import drop_page_numbers, is_heading, join_hyphen_breaks, normalise, title_lines, unwrap
from tests.conftest import shared

PAPERS = ("1406.2661_GAN.pdf", "1706.03762_Attention_is_all_you_need.pdf", "1810.04805_BERT.pdf",
          "2005.11401v4.pdf", "2106.09685v2.pdf", "2305.14314v1.pdf")
# Chunking version 1 (langchain's recursive splitter, 500/50, over Tika's line-broken text)
# gave these six papers 1,105 chunks, measured at commit 71bd845; version 2 gives 936.
VERSION_1_CHUNKS = 1105


@cache
def paper(name: str):
    return extract(shared("papers", name))


def test_hyphens_at_line_ends_join_words_but_keep_real_hyphens():
    assert join_hyphen_breaks("a repre-\nsentation") == "a representation"
    assert join_hyphen_breaks("bidirec-\ntional") == "bidirectional"
    assert join_hyphen_breaks("the pre-\ntraining", frozenset({"pre-training"})) == \
        "the pre-training"  # the document's own spelling wins
    assert join_hyphen_breaks("the pre-\ntraining", frozenset({"pretraining"})) == \
        "the pretraining"
    assert join_hyphen_breaks("state-of-\nthe-art") == "state-of-the-art"
    assert join_hyphen_breaks("GPT-\n2 and BERT-\nLarge") == "GPT-2 and BERT-Large"


def test_unwrap_joins_paragraph_lines_and_keeps_headings_and_lists():
    text = ("3.1 Pre-training BERT\n\nUnlike Peters et al. (2018a) and\nRadford et al. we do not"
            "\nuse them.\n\nWe list:\n• one thing\n• another thing")
    assert unwrap(text) == ("3.1 Pre-training BERT\n\nUnlike Peters et al. (2018a) and Radford "
                            "et al. we do not use them.\n\nWe list:\n• one thing\n• another thing")
    # A numbered line that the next one continues in lower case is a list item, not a heading.
    assert unwrap("1. Question: Does BERT really need such\na large amount of pre-training?") \
        == "1. Question: Does BERT really need such a large amount of pre-training?"
    # A heading inside a paragraph (no blank line around it) becomes a paragraph of its own.
    assert unwrap("it ends here.\n2 Related Work\nThere is") == \
        "it ends here.\n\n2 Related Work\n\nThere is"


@pytest.mark.parametrize("line", ["3.1 Pre-training BERT", "Abstract", "1 Introduction",
                                  "A.2 Details of the Setup", "RELATED WORK", "References",
                                  "SECTION 3", "TERMS AND CONDITIONS",
                                  "Tip 1: Decide whether deep learning is appropriate for your problem",
                                  "Step 3 - Clean the data", "Chapter IV. The Return"])
def test_headings_are_found(line):
    assert is_heading(line)


@pytest.mark.parametrize("line", ["1 BERTBASE 84.6 83.4", "2 layers are stacked in the",
                                  "This is a sentence.", "BERT BERT", "12", "Figure 1: The model,",
                                  "BERTBASE 81.6 -", "E[CLS] E1 E[SEP]... EN E1’ ... EM’",
                                  "MASK SAME RND MNLI NER", "GPT-3 (FT) 175,255.8M 73.8 89.5",
                                  "Figure 2: The Transformer architecture", "Tip 2: we use it.",
                                  "Step 4: the model then reads each chunk of the document once more and "
                                  "writes down what it says about each of the questions"])
def test_table_rows_figure_labels_and_sentences_are_not_headings(line):
    assert not is_heading(line)


def test_a_lettered_heading_is_an_appendix_only_in_the_back_matter():
    for line in ("C Training setup Details", "G Parameters", "I Number of instances per dataset"):
        assert is_heading(line, lettered=True) and not is_heading(line)
    assert not is_heading("A Transformer model is shown")  # a sentence's line, elsewhere
    for line in ("U S A U S A U S A", "B 12 34", "X Y"):
        assert not is_heading(line, lettered=True)
    pages = ["2 Method\n\nA Transformer reads\n\nthe text.",
             "References\n\n[1] A. Author. A title. 2020.\n\nA Implementation Details\n\nWe use "
             "a learning rate of 1e-5.", "B Human Evaluation\n\nWe asked people."]
    chunks = chunk_pages(pages, chunk_size=40, chunk_overlap=0)
    assert list(dict.fromkeys(c.section for c in chunks)) == [
        "2 Method", "References", "A Implementation Details", "B Human Evaluation"]
    assert chunks[0].text == "2 Method\n\nA Transformer reads\n\nthe text."


@pytest.mark.parametrize("name, appendices", [
    ("2005.11401v4.pdf", {"A Implementation Details", "C Training setup Details", "G Parameters"}),
    # headings the layout gave on the line above their first sentence's
    ("2305.14314v1.pdf", {"A QLoRA vs Standard Finetuning Experimental Setup Details",
                          "A.1 Hyperparameters for QLORA", "C Human Evaluation",
                          "G Memory Footprint"}),
])
def test_appendices_are_sections_of_their_own(name, appendices):
    doc = paper(name)
    sections: dict = {}
    for chunk in chunk_pages(doc.pages, title=doc.title):
        sections.setdefault(chunk.section, chunk)
    assert appendices <= set(sections)
    assert min(sections[a].page for a in appendices) >= sections["References"].page


def test_a_figures_words_in_pieces_go():
    """The Transformer paper's attention maps print their sentence cut into pieces, forty
    blocks a page ("ill ne", "ve r", "be pe rfe"); its captions stay."""
    doc = paper("1706.03762_Attention_is_all_you_need.pdf")
    assert "be pe rfe" not in doc.text and "ct , bu" not in doc.text
    assert "Figure 4: Two attention heads, also in layer 5 of 6" in doc.text
    short = ["Pay rate", "Job role", "Team name", "Work city", "Zip code", "Fax line"]  # a form's
    assert unwrap("\n\n".join(short)) == "\n\n".join(short)


def test_a_figures_labels_go_and_tables_and_forms_stay():
    figure = "Trm Trm Trm\n\n...\n\nOpenAI GPT\n\nLstm\n\nT1 T2 TN...\n\nE1 E2 EN..."
    table = "BERTBASE 84.4 88.4\n\nNo NSP 83.9 84.9\n\nLTR 82.1 84.3\n\nBERTLARGE 86.6 86.3"
    form = "Signature:\n\nName: Jane Roe\n\nTitle: CEO\n\nDate:"
    assert unwrap(f"Prose before it.\n\n{figure}\n\nFigure 3: The models.") == \
        "Prose before it.\n\nFigure 3: The models."
    assert unwrap(table) == table
    assert unwrap(form) == form
    # Labels without a symbol among them may be a list of names: they stay.
    assert unwrap("Alice Smith\n\nBob Jones\n\nCarol White") == \
        "Alice Smith\n\nBob Jones\n\nCarol White"


def test_a_paragraph_break_inside_a_sentence_is_undone():
    assert normalise("we chose the 4-th token (which corresponds to hairy), and\n\nour masking"
                     " procedure is\n\nNext paragraph.") == \
        "we chose the 4-th token (which corresponds to hairy), and\nour masking procedure is" \
        "\n\nNext paragraph."
    assert normalise("a major difference is mini-\n\nmal") == "a major difference is minimal"
    # Short lines are the letters of vertical text or a formula, not prose: left apart.
    assert normalise("Ju\n\nn 20\n\n14") == "Ju\n\nn 20\n\n14"
    assert unwrap(normalise("the original vocabulary id of the masked\n\n\n\nar\nX\n\n\n\niv\n:1"
                            "\n\n\n\n81\n0.\n\n\n\n04\n80")) == "the original vocabulary id of the masked"


@pytest.mark.parametrize("name", PAPERS)
def test_chunks_of_real_papers_are_exact_bounded_and_full(name):
    doc = paper(name)
    chunks = chunk_pages(doc.pages, title=doc.title)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert doc.pages[c.page - 1][c.start:c.end] == c.text  # spans into the stored page text
        assert 0 < len(c.text) <= DEFAULT_CHUNK_SIZE and c.text == c.text.strip()
        assert c.title == doc.title
    # A short chunk ends a page or a section (or sits before a sentence too long to join it).
    short_inside = [c for c, nxt in zip(chunks, chunks[1:])
                    if len(c.text) < DEFAULT_CHUNK_SIZE / 2 and nxt.page == c.page
                    and nxt.section == c.section]
    assert len(short_inside) <= 0.1 * len(chunks)
    lengths = sorted(len(c.text) for c in chunks)
    assert lengths[len(lengths) // 2] >= 0.75 * DEFAULT_CHUNK_SIZE
    text = doc.text
    assert not re.search(r"[a-z]-\n[a-z]", text)  # no word left cut at a line end (a page's
    # last word can be: pages stay apart, so chunk spans point into one page)
    lines = [line for line in text.split("\n") if line]
    in_long_lines = sum(len(line) for line in lines if len(line) > 150)
    assert in_long_lines > 0.7 * sum(len(line) for line in lines)  # paragraphs, not layout lines


def test_page_numbers_at_a_pages_edge_go_and_other_lone_numbers_stay():
    pages = ["Title\n\nText of page one.", "Text of page two ends in a table\n\n17\n\n2",
             "- 3 -\nText of page three.", "Page 4 of 9\nText.\n\n12"]
    assert drop_page_numbers(pages) == [
        "Title\n\nText of page one.", "Text of page two ends in a table\n\n17\n",
        "Text of page three.", "Text.\n\n12"]
    # printed from page 11 on: the offset is the pages' own
    assert drop_page_numbers(["A.\n11", "B.\n12", "C.\n13"]) == ["A.", "B.", "C."]
    # one lone number is a table's last value as likely as a page number
    assert drop_page_numbers(["A.", "B.\n\n2", "C."]) == ["A.", "B.\n\n2", "C."]


@pytest.mark.parametrize("name", ["1706.03762_Attention_is_all_you_need.pdf", "2005.11401v4.pdf"])
def test_no_chunk_of_a_real_paper_ends_in_its_page_number(name):
    """The Transformer paper's pages end "…\n\n7"; a chunk that ended so was read as "7"."""
    doc = paper(name)
    chunks = chunk_pages(doc.pages, title=doc.title)
    assert not [c for c in chunks if c.text.split()[-1] == str(c.page)]
    assert not [p for p in doc.pages if re.search(r"\n\s*\d{1,2}\s*$", p)]


def test_a_hard_wrapped_text_file_is_read_in_paragraphs_and_a_list_keeps_its_lines(tmp_path):
    """SC-LoRA's text, copied out of its PDF, breaks every line mid-sentence: its chunks held
    "solving the" / "problems that…" on lines of their own, and no section was found."""
    doc = extract(shared("papers", "2505.23724v1.txt"))
    # the arXiv stamp glued to the title's first line is not the title, nor its start
    assert doc.title == ("SC-LoRA: Balancing Efficient Fine-tuning and Knowledge Preservation "
                         "via Subspace-Constrained LoRA")
    chunks = chunk_pages(doc.pages, title=doc.title)
    assert {"1 Introduction", "3.2 SC-LoRA", "5 Conclusion"} <= {c.section for c in chunks}
    lines = [line for line in doc.text.split("\n") if line]
    assert sum(len(line) > 150 for line in lines) > 0.5 * len(lines)
    shopping = tmp_path / "list.txt"
    shopping.write_text("Groceries\nMilk and eggs\nBread\nCoffee beans, the dark roast\n")
    assert extract(shopping).text == "Groceries\nMilk and eggs\nBread\nCoffee beans, the dark roast"
    notes = tmp_path / "notes.md"  # Markdown's line breaks are its syntax
    notes.write_text("# Notes\nA line that goes\non in lower case\nand again\n")
    assert "goes\non" in extract(notes).text


def test_chunk_count_of_the_six_papers_falls_clearly():
    total = sum(len(chunk_pages(paper(name).pages)) for name in PAPERS)
    assert total <= 0.9 * VERSION_1_CHUNKS


def test_bert_title_and_the_pre_training_section():
    doc = paper("1810.04805_BERT.pdf")
    assert doc.title == ("BERT: Pre-training of Deep Bidirectional Transformers for Language "
                         "Understanding")
    assert "we pre-train BERT using two unsupervised tasks, described in this section" in doc.text
    assert "There is minimal difference between the pre-trained" in doc.text
    assert "Trm Trm" not in doc.text and "E[CLS] E1 E[SEP]" not in doc.text  # Figures 1 to 4
    chunks = chunk_pages(doc.pages, title=doc.title)
    section = [c for c in chunks if c.section == "3.1 Pre-training BERT"]
    assert section[0].text.startswith("3.1 Pre-training BERT\n\nUnlike Peters et al.")
    assert "two unsupervised tasks" in section[0].text
    assert any("Masked LM" in c.text for c in section)
    assert any("Next Sentence Prediction" in c.text for c in section)
    assert section[0].title == doc.title
    # Every section is a real heading: no table row or figure label ("BERTBASE 81.6 -",
    # "E[CLS] E1 E[SEP]...") heads the chunks after it.
    assert not any("[SEP]" in c.section or "BERTBASE" in c.section for c in chunks)
    # A heading cut after "and" at a line break is joined to its last line.
    assert "A.4 Comparison of BERT, ELMo ,and OpenAI GPT" in {c.section for c in chunks}
    assert section[0].embedded_text == contextual_text("", "3.1 Pre-training BERT",
                                                       section[0].text)
    assert section[0].embedded_text.startswith("3.1 Pre-training BERT · 3.1 Pre-training BERT")


@pytest.mark.parametrize(("text", "kept"), [
    ("4.2 Results of the\n\nGLUE Benchmark\n\nWe report.", "4.2 Results of the GLUE Benchmark"),
    ("2 Related work\n\nEarly work", "2 Related work"),  # "work" can end a heading
    ("3 Models and\n\nthe data that we use to train them all.", "3 Models and"),  # a sentence
])
def test_a_heading_cut_after_a_word_that_cannot_end_it_is_joined(text, kept):
    assert unwrap(text).split("\n\n")[0] == kept


def test_sentences_of_a_chunk_with_short_pieces_joined():
    doc = paper("1810.04805_BERT.pdf")
    first = next(c for c in chunk_pages(doc.pages, title=doc.title)
                 if c.section == "3.1 Pre-training BERT")
    sentences = [first.text[start:end] for start, end in sentence_spans(first.text)]
    # The heading is too short to stand alone and opens the first sentence.
    assert sentences[0].startswith("3.1 Pre-training BERT\n\nUnlike Peters et al.")
    assert sentences[0].endswith("to pre-train BERT.")
    assert ("Instead, we pre-train BERT using two unsupervised tasks, described in this section."
            in sentences)
    assert all(len(s.split()) >= 6 for s in sentences)
    # Labels join the sentence after them, and a short last sentence the one before it.
    text = ("Figure 2. NSP Mask LM. The model reads both sentences at once. It then predicts "
            "whether the second follows the first. Or not.")
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Figure 2. NSP Mask LM. The model reads both sentences at once.",
        "It then predicts whether the second follows the first. Or not."]


def test_long_sentences_are_cut_between_words_with_overlap():
    words = " ".join(f"w{i:03d}" for i in range(200))  # one 999-character "sentence"
    chunks = chunk_pages([words], chunk_size=100, chunk_overlap=20)
    assert all(len(c.text) <= 100 for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert 0 < a.end - b.start <= 20  # the next chunk repeats a few whole words
        assert words[b.start - 1] == " "
    assert chunks[-1].text.endswith("w199")


def test_a_text_that_opens_with_prose_has_no_title_from_it():
    letter = ("Dear Ms Brown, thank you for your letter about the garden fence. The fence will be "
              "repaired next week. Yours sincerely, John Smith.")
    assert title_lines(letter) == ""
    assert title_lines("A Parser for Everything\n\nWe propose a new parser, the Frobnicator, "
                       "which reads every format.") == "A Parser for Everything"


def test_a_caption_stays_with_the_rows_of_its_table():
    """A table's caption below its rows ends their chunk, and the next table's chunk does not
    open with it: "Table 2: SQuAD 1.1 results." had stood above the SQuAD 2.0 rows."""
    prose = "The systems are compared on the development and test sets. " * 4
    page = "\n\n".join([prose, "System Dev Test EM F1", "BERTLARGE (Ensemble) 85.8 91.8 87.4 93.2",
                        "Table 2: SQuAD 1.1 results. The ensemble is seven systems.",
                        "System Dev Test EM F1", "Human 86.3 89.0 86.9 89.5",
                        "Table 3: SQuAD 2.0 results.", prose])
    chunks = chunk_pages([page], 300, 30)
    [squad1] = [c for c in chunks if "Table 2" in c.text]
    [squad2] = [c for c in chunks if "Table 3" in c.text]
    assert "93.2" in squad1.text and "89.0" not in squad1.text and squad1.text.endswith("systems.")
    assert "89.0" in squad2.text and squad2.text.startswith("System Dev Test")
    # above its table (the Transformer's, RAG's): the caption opens the chunk of its rows
    above = "\n\n".join([prose, "Table 1: Results on the test set.", "Model BLEU EN-DE",
                         "Transformer (base) 27.3", prose])
    [table] = [c for c in chunk_pages([above], 300, 30) if "Table 1" in c.text]
    assert table.text.startswith("Table 1") and "27.3" in table.text



def test_a_figures_caption_is_prose_and_a_long_tables_caption_is_cut_on_its_tables_side():
    """A figure's caption made a chunk of its own had outranked the passage that names BERT's
    two pre-training tasks; a table's caption too long to keep its rows still ends their chunk."""
    tasks = "We pre-train BERT using two unsupervised tasks, described in this section."
    figure = "\n\n".join(["Figure 1: Overall pre-training and fine-tuning procedures for BERT.", tasks])
    assert [c.text for c in chunk_pages([figure], 500, 50)] == [figure]
    caption = "Table 1: Results on the development set. " + "Each column is one task of the benchmark. " * 8
    after = "The results are discussed below. " * 3
    page = "\n\n".join(["System MNLI QQP SST-2", "BERTBASE 84.6 71.2 93.5", caption.strip(), after.strip()])
    chunks = chunk_pages([page], 300, 30)
    assert any(c.text.endswith("benchmark.") and "Table 1" not in c.text for c in chunks)
    assert chunks[-1].text == after.strip()

@pytest.mark.parametrize("paragraph, row", [
    ("BERTLARGE (Single) 84.1 90.9 - -", True), ("System Dev Test EM F1 EM F1", True),
    ("#L #H #A LM (ppl) MNLI-m MRPC SST-2", True),
    ("Table 2: SQuAD 1.1 results.", False),  # a caption
    ("We fine-tune for 3 epochs with a learning rate of 5e-5 and a batch size of 32.", False),
])
def test_a_tables_rows_are_told_from_prose(paragraph, row):
    from core.rag.tables import is_table, is_table_row

    assert is_table_row(paragraph) is row
    table = "System Dev Test EM F1\n\nBERTLARGE (Single) 84.1 90.9 - -\n\nTable 2: SQuAD 1.1 results."
    assert is_table(table) and not is_table("Table 2 shows the results.\n\n" + "We compare them. " * 9)


@pytest.mark.parametrize("name", ["1406.2661_GAN.pdf", "1810.04805_BERT.pdf", "2106.09685v2.pdf"])
def test_a_caption_below_its_table_opens_no_chunk_of_other_text(name):
    """These papers put table captions below their tables: a caption ends the chunk of its
    rows, or stands alone where they do not fit beside it; it never opens the next table's
    chunk (BERT's "Table 2: SQuAD 1.1 results." over the SQuAD 2.0 rows, "Table 6: Ablation
    over BERT model size" over Table 7's)."""
    from core.rag.tables import is_caption

    doc = paper(name)
    chunks = chunk_pages(doc.pages, title=doc.title)
    for c in chunks:
        first = c.text.split("\n\n")[0]
        if first.startswith("Table") and is_caption(first):
            assert c.text == first, (c.index, c.text[:300])
    if name.startswith("1810"):
        [squad1] = [c for c in chunks if "Table 2: SQuAD 1.1 results" in c.text]
        assert "93.2" in squad1.text and "89.0" not in squad1.text
