"""Questions about a document itself are answered from its opening chunk (which documents a
question names: tests/test_naming.py)."""

from core.rag.bm25 import Bm25Index
from core.rag.front_matter import (
    RETRIEVER,
    as_the_model_reads_it,
    asks_about_document,
    asks_for_parties,
    opening_chunks,
    readable,
)
from core.rag.hits import Hit
from core.rag.naming import rest_of_author_list
from core.rag.prompting import build_prompt, context_block


def test_only_questions_about_who_wrote_a_document_or_its_title_ask_about_it():
    for question in ("Who wrote the BERT paper?", "Who are the authors of BERT?",
                     "who is the author", "What are the authors' affiliations?",
                     "Where do the authors of QLoRA work?", "What is the title of this paper?",
                     "List the names of the authors.", "Where does Aidan N. Gomez work?",
                     "Where did Ian Goodfellow work?"):
        assert asks_about_document(question), question
    # QASPER asks about the content this way dozens of times
    for question in ("What do the authors propose?", "Which dataset do the authors use?",
                     "Who funded this contract?", "What is BERT?", "How was it written?",
                     "Where does BERT work well?", "Where does the model work best?"):
        assert not asks_about_document(question), question


def test_who_wrote_is_put_to_the_model_as_who_the_authors_are():
    """Asked "Who wrote QLoRA?" the 0.5B named the first of four authors; asked for the
    authors, all four."""
    assert as_the_model_reads_it("Who wrote QLoRA?") == "Who are the authors of QLoRA?"
    assert as_the_model_reads_it("who authored the Transformer paper ? ") == \
        "Who are the authors of the Transformer paper?"
    for question in ("Who are the authors of BERT?", "Who wrote the section on LoRA, and why?",
                     "What did Devlin write?", "Who wrote", "Who wrote it?", "who wrote this?"):
        assert as_the_model_reads_it(question) == question
    # over the passages of one document "it" is that one: the sample paper's twenty authors,
    # where "Who wrote it?" got the first
    assert as_the_model_reads_it("Who wrote it?", one_document=True) == \
        "Who are the authors of it?"


def test_who_wrote_it_is_asked_for_the_authors_only_over_one_documents_passages(engine):
    def asked(*docs: str) -> str:
        hits = [Hit(rank=n, score=0.1, doc=f"{doc}.pdf", page=1, chunk_id=f"{doc}:0",
                    text=f"{doc} title\n\nAnna Bell, Carl Dahl", retriever=RETRIEVER,
                    title=doc, doc_id=doc) for n, doc in enumerate(docs, 1)]
        content = build_prompt("Who wrote it?", hits, engine, 64).messages[0]["content"]
        return content.split("Question: ")[1].split("\n")[0]

    assert asked("GAN") == "Who are the authors of it?"
    # two papers' authors were given as one list
    assert asked("GAN", "BERT") == "Who wrote it?"



def test_asking_who_the_parties_are_asks_about_the_document():
    for question in ("Who are the parties?", "Who are the two parties?",
                     "Who are the parties to this agreement?", "who is a party to the contract",
                     "List the names of the parties.", "Between whom is this agreement?",
                     "Who signed the statement of work?", "Which companies are parties to it?"):
        assert asks_for_parties(question) and asks_about_document(question), question
    # what the parties must do is the content's
    for question in ("What must the parties do?", "Can either party terminate?",
                     "Which party pays for shipping?", "What do the parties agree on?"):
        assert not asks_about_document(question), question


def index(*docs: tuple[str, str, str]) -> Bm25Index:
    """Two chunks of each (doc_id, file, title)."""
    metas = [{"doc_id": d, "file": f, "title": t, "chunk": c, "page": 1, "section": ""}
             for d, f, t in docs for c in (0, 1)]
    return Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas],
                     [f"{m['title']} text {m['chunk']}" for m in metas], metas)


def test_the_opening_chunks_of_the_documents_named_or_else_retrieved():
    idx = index(("b", "1810.04805_BERT.pdf", "BERT: Pre-training of Deep Transformers"),
                ("g", "1406.2661_GAN.pdf", "Generative Adversarial Nets"),
                ("w", "sow.pdf", "Square One Statement of Work"))
    ids = lambda positions: [idx.ids[i] for i in positions]  # noqa: E731
    # Named in the title, or in the file name; retrieval's order does not matter then
    assert ids(opening_chunks(idx, "Who wrote the BERT paper?", ["g", "w"], (), 3)) == ["b:0"]
    assert ids(opening_chunks(idx, "Who are the authors of the GAN paper?", [], (), 3)) == ["g:0"]
    # Only capitalised words name a document: "work" is not "Statement of Work"
    assert ids(opening_chunks(idx, "Where do the authors of QLoRA work?", ["g", "w", "g"], (),
                              3)) == ["g:0", "w:0"]
    # Not named: the documents retrieval found, best first, at most `limit`, within the filter
    assert ids(opening_chunks(idx, "Who wrote this paper?", ["w", "b", "g"], (), 2)) == \
        ["w:0", "b:0"]
    assert ids(opening_chunks(idx, "Who wrote this paper?", ["w", "b"], ("b", "g"), 3)) == \
        ["b:0"]
    # A name that no document has, and retrieval too weak to answer: no openings to misread
    assert opening_chunks(idx, "Who are the authors of QLoRA?", ["g", "w"], (), 3, False) == []
    assert ids(opening_chunks(idx, "Who wrote this paper?", ["w"], (), 3, False)) == ["w:0"]
    assert ids(opening_chunks(idx, "Who wrote the GAN paper?", ["w"], (), 3, False)) == ["g:0"]


def test_a_stamp_before_the_title_block_is_not_the_opening():
    """OCR read the LoRA paper's arXiv margin as its first chunk, before its title block."""
    block = "LORA: LOW-RANK ADAPTATION OF LARGE LANGUAGE MODELS\n\nEdward Hu* Yelong Shen* " \
            "Phillip Wallis Zeyuan Allen-Zhu Yuanzhi Li Shean Wang Lu Wang Weizhu Chen"
    texts = ["arXiv:2106.09685v2 [cs.CL] 16 Oct 2021", block, "ABSTRACT " * 30, "Short."]
    metas = [{"doc_id": d, "file": f"{d}.pdf", "title": t, "chunk": c, "page": 1,
              "section": ""} for d, t, c in (("l", "LoRA: Low-Rank Adaptation of Large Language "
                                             "Models", 0), ("l", "", 1), ("l", "", 2),
                                             ("s", "Notes", 0))]
    for m in metas:
        m["title"] = m["title"] or metas[0]["title"]
    idx = Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas], texts, metas)
    ids = lambda positions: [idx.ids[i] for i in positions]  # noqa: E731
    assert ids(opening_chunks(idx, "Who are the authors of the LoRA paper?", ["l"], (), 3)) == \
        ["l:1"]
    # a document whose title its chunks do not hold opens with its first
    assert ids(opening_chunks(idx, "Who wrote this?", ["s"], (), 3)) == ["s:0"]


def test_a_paper_is_named_above_all_by_the_name_it_introduces():
    """"The Transformer paper" is Attention's, which introduces the Transformer, not BERT's,
    whose title says "Transformers"; "the BERT paper" is BERT's, not RoBERTa's."""
    docs = {"b": ("1810.04805_BERT.pdf", "BERT: Pre-training of Deep Bidirectional Transformers",
                  "We introduce a new language representation model called BERT, which stands "
                  "for Bidirectional Encoder Representations from Transformers."),
            "a": ("1706.03762_Attention.pdf", "Attention Is All You Need",
                  "We propose a new simple network architecture, the Transformer, based solely "
                  "on attention mechanisms."),
            "r": ("1907.11692_RoBERTa.pdf", "RoBERTa: A Robustly Optimized BERT Pretraining "
                  "Approach", "We present a replication study of BERT pretraining.")}
    # as Tika's text is chunked: the title block, then the abstract
    metas = [{"doc_id": d, "file": f, "title": t, "chunk": c, "page": 1, "section": ""}
             for d, (f, t, _) in docs.items() for c in (0, 1)]
    idx = Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas],
                    [docs[m["doc_id"]][1 + m["chunk"]] for m in metas], metas)
    # the chunk that introduces the name comes with the opening, unless the title does
    for question, chunks in (("Who wrote the Transformer paper?", ["a:0", "a:1"]),
                             ("Who are the authors of the BERT paper?", ["b:0"]),
                             ("Who wrote RoBERTa?", ["r:0"])):
        for retrieved in (["b", "r", "a"], ["a", "b", "r"], []):
            assert [idx.ids[i] for i in opening_chunks(idx, question, retrieved, (), 3)] == \
                chunks, (question, retrieved)
    # a one-chunk document that introduces its name in its opening gets no chunk twice
    one = Bm25Index(["x:0"], ["We propose a new model, the Frobnicator, for parsing."],
                    [{"doc_id": "x", "file": "x.txt", "title": "", "chunk": 0, "page": 1}])
    assert opening_chunks(one, "Who wrote the Frobnicator paper?", [], (), 3) == [0]


def test_a_person_is_found_in_the_opening_that_names_them():
    """Retrieval found BERT's references, which cite Gomez; his own paper's title block says
    where he works."""
    metas = [{"doc_id": d, "file": f"{d}.pdf", "title": t, "chunk": 0, "page": 1, "section": ""}
             for d, t in (("b", "BERT"), ("a", "Attention Is All You Need"))]
    idx = Bm25Index(["b:0", "a:0"], ["BERT\n\nJacob Devlin Google AI Language",
                                     "Attention Is All You Need\n\nAidan N. Gomez∗ † University "
                                     "of Toronto"], metas)
    assert opening_chunks(idx, "Where does Aidan N. Gomez work?", ["b"], (), 3) == [1]
    assert opening_chunks(idx, "Where did Jacob Devlin work?", ["a"], (), 3) == [0]
    # one capitalised word is no full name: the documents retrieval found
    assert opening_chunks(idx, "Where do the authors of Gomez work?", ["b"], (), 3) == [0]


def test_asked_for_the_parties_each_documents_end_comes_after_its_opening():
    """An agreement names its parties in its preamble, a form where it is signed."""
    idx = index(("w", "sow.docx", "Square One Statement of Work"),
                ("o", "offer.docx", "Square One Offer Letter"), ("b", "bert.pdf", "BERT"))
    ids = lambda positions: [idx.ids[i] for i in positions]  # noqa: E731
    # k documents, each with both ends: more chunks than k
    assert ids(opening_chunks(idx, "Who are the parties?", ["o", "w", "b"], (), 2)) == \
        ["o:0", "o:1", "w:0", "w:1"]
    assert ids(opening_chunks(idx, "Who are the parties to the Statement of Work?", ["o"], (),
                              3)) == ["w:0", "w:1"]
    # a one-chunk document is its own end
    one = Bm25Index(["x:0"], ["Agreement between A and B"],
                    [{"doc_id": "x", "file": "x.txt", "title": "", "chunk": 0, "page": 1}])
    assert opening_chunks(one, "Who are the parties?", ["x"], (), 3) == [0]


# Title blocks as Tika extracts the shared papers (GAN, RAG, Attention and LoRA)
GAN = ("Generative Adversarial Nets\n\nIan J. Goodfellow, Jean Pouget-Abadie∗, Mehdi Mirza, "
       "Bing Xu, David Warde-Farley, Sherjil Ozair†, Aaron Courville, Yoshua Bengio‡\n\n"
       "Département d’informatique")
RAG = ("Retrieval-Augmented Generation\n\nPatrick Lewis†‡, Ethan Perez?,\n\nAleksandra Piktus†, "
       "Douwe Kiela†\n\n†Facebook AI Research; ‡University College London; ?New York University; "
       "plewis@fb.com")
ATTENTION = ("Noam Shazeer∗ Google Brain\n\nnoam@google.com\n\n\n\nAidan N. Gomez∗ † University "
             "of Toronto aidan@cs.toronto.edu")
LORA = ("Edward Hu∗ Yelong Shen* Phillip Wallis Zeyuan Allen-Zhu Microsoft Corporation "
        "{edwardhu, yeshe}@microsoft.com (Version 2)")
SC_LORA = ("SC-LoRA: Balancing Efficient Fine-tuning\nSubspace-Constrained LoRA\nMinrui Luo∗1,2, "
           "Fuhang Kuang∗1, Yu Wang3, Tianxing He†1,2\n1Institute for Interdisciplinary "
           "Information Sciences, Tsinghua University\n2Shanghai Qi Zhi Institute\n"
           "{luomr22,kfh22}@mails.tsinghua.edu.cn")
BERT = ("BERT: Pre-training of Deep Bidirectional Transformers\n\nJacob Devlin Ming-Wei Chang "
        "Kenton Lee Kristina Toutanova Google AI Language\n\n{jacobdevlin,kristout}@google.com")
QLORA = ("QLORA: Efficient Finetuning of Quantized LLMs\n\nTim Dettmers∗ Artidoro Pagnoni∗ Ari "
         "Holtzman\n\nLuke Zettlemoyer\n\nUniversity of Washington {dettmers,lsz}@cs.washington.edu")


def test_a_title_block_is_read_without_footnote_marks_and_addresses():
    # Given "Pouget-Abadie∗," the 0.5B wrote "Pouget-Abadie*" and ended there, two names of eight
    assert readable(GAN) == (
        "Generative Adversarial Nets\n\nIan J. Goodfellow, Jean Pouget-Abadie, Mehdi Mirza, "
        "Bing Xu, David Warde-Farley, Sherjil Ozair, Aaron Courville, Yoshua Bengio\n\n"
        "Département d’informatique")
    # a list of names goes on past a comma at a line's end; "?" stood for a star
    assert readable(RAG) == (
        "Retrieval-Augmented Generation\n\nPatrick Lewis, Ethan Perez, Aleksandra Piktus, "
        "Douwe Kiela\n\nFacebook AI Research; University College London; New York University;")
    # "Who wrote the Attention Is All You Need paper?" got "Niki Parmar Google Research", one
    # of eight, and "Who is the first author of QLoRA?" three names: the names are set apart
    assert readable("Hiring Contact {Herbert Rudolf <hr@superco.com>}") == \
        "Hiring Contact {Herbert Rudolf}"
    # a title of capitalised words is not a list of names
    assert readable("Square One Offer Letter\n\nDevelopment Draft\n\nEmployee {Jane Smith}",
                    "Square One Offer Letter") == \
        "Square One Offer Letter\n\nDevelopment Draft\n\nEmployee {Jane Smith}"
    # each one's own affiliation after all the names: beside each name, "Who wrote the
    # Attention paper?" got the first name alone
    assert readable(ATTENTION) == ("Noam Shazeer, Aidan N. Gomez\n\n"
                                   "Noam Shazeer (Google Brain); Aidan N. Gomez (University of Toronto)")
    assert readable("Ashish Vaswani∗ Google Brain\n\nNiki Parmar∗ Google Research\n\n"
                    "Noam Shazeer∗ Google Brain") == ("Ashish Vaswani, Niki Parmar, Noam Shazeer\n\n"
                                                      "Ashish Vaswani, Noam Shazeer (Google Brain); "
                                                      "Niki Parmar (Google Research)")
    assert readable(LORA) == ("Edward Hu, Yelong Shen, Phillip Wallis, Zeyuan Allen-Zhu\n\n"
                              "Microsoft Corporation (Version 2)")
    assert readable(BERT) == ("BERT: Pre-training of Deep Bidirectional Transformers\n\nJacob "
                              "Devlin, Ming-Wei Chang, Kenton Lee, Kristina Toutanova\n\n"
                              "Google AI Language")
    assert readable(QLORA).split("\n\n")[1:] == [
        "Tim Dettmers, Artidoro Pagnoni, Ari Holtzman, Luke Zettlemoyer", "University of Washington"]
    # affiliation numbers, and a block that breaks lines but not paragraphs (a text file)
    assert readable(SC_LORA) == (
        "SC-LoRA: Balancing Efficient Fine-tuning\nSubspace-Constrained LoRA\n\n"
        "Minrui Luo, Fuhang Kuang, Yu Wang, Tianxing He\n\n"
        "Institute for Interdisciplinary Information Sciences, Tsinghua University\n"
        "Shanghai Qi Zhi Institute")
    # what cannot be told apart is left as it was: names of an odd count with nothing between
    # them, a short title, an affiliation that ends in "University", a letter's lines
    for text in ("Anna Bell Carl Dahl Eve\n\nGoogle", "Generative Adversarial Nets",
                 "Facebook AI Research; New York University", "Deep Learning\n\nAnna Bell",
                 "Employee {Jane Smith}\n\nSupervisor {Janet Duncan, Chief Technology Officer}"):
        assert readable(text) == text, text
    # what is not a mark stays: a product, a question, a footnote's number
    assert readable("2*3 = 6. Is it?\nWhy? Because1 it is") == "2*3 = 6. Is it?\nWhy? Because1 it is"


def test_the_model_reads_an_opening_found_for_its_title_block_cleaned_and_others_as_they_are():
    def passage(retriever: str) -> str:
        lead = Hit(rank=1, score=0.1, doc="1406.2661_GAN.pdf", page=1, chunk_id="g:0", text=GAN,
                   retriever=retriever, title="Generative Adversarial Nets")
        return context_block(lead, [{"page": 1, "start": 0, "end": len(GAN), "text": GAN}])

    assert "Jean Pouget-Abadie, Mehdi Mirza" in passage(RETRIEVER) and "∗" not in passage(RETRIEVER)
    assert passage("both").endswith(GAN)  # the panel and other passages show the text as it is


# The shipped sample paper's title block (Manubot) as Tika gives it from the PDF, and as its web
# page gives it: twenty authors over twelve chunks; three of them here.
MANUBOT_PDF = (
    "Ten Quick Tips for Deep Learning in Biology This manuscript (permalink) was automatically "
    "generated on November 30, 2021.\n\nAuthors\n\n"
    "Benjamin D. Lee 0000-0002-7133-8397 · Benjamin-Lee\n\n"
    "In-Q-Tel Labs; Department of Genetics, Harvard Medical School\n\n"
    "Sebastian Raschka 0000-0001-6989-4493 · rasbt · rasbt\n\n"
    "Department of Statistics, University of Wisconsin-Madison · Funded by Wisconsin Alumni "
    "Foundation (AAD5912)\n\n"
    "Timothy J. Triche, Jr. 0000-0001-5665-946X · ttriche\n"
    "Center for Epigenetics, Van Andel Research Institute\n"
    "Introduction\n\nMachine learning is a modern approach to problem-solving.")
MANUBOT_HTML = (
    "Authors\n\nBenjamin D. Lee\n\n0000-0002-7133-8397 · Benjamin-Lee\n\n"
    "In-Q-Tel Labs; Department of Genetics, Harvard Medical School\n\n"
    "Sebastian Raschka\n\n0000-0001-6989-4493 · rasbt · rasbt\n\n"
    "Department of Statistics, University of Wisconsin-Madison\n"
    "· Funded by Wisconsin Alumni Foundation (AAD5912)\n\nAbstract")


def test_authors_marked_with_orcid_ids_are_read_as_one_list_and_where_each_works():
    """Given the block as it is, the 0.5B named 5 of the sample paper's 20 authors, two garbled
    from their handles ("Sebastian Rasbt")."""
    names = "Benjamin D. Lee, Sebastian Raschka, Timothy J. Triche, Jr."
    assert readable(MANUBOT_PDF, where_they_work=False) == (
        "Ten Quick Tips for Deep Learning in Biology This manuscript (permalink) was "
        "automatically generated on November 30, 2021.\n\nAuthors\n\n"
        f"{names}\n\nIntroduction\n\nMachine learning is a modern approach to problem-solving.")
    places = readable(MANUBOT_PDF).split("\n\n")
    assert places[2:5] == [names, (
        "Where they work:\nBenjamin D. Lee works at In-Q-Tel Labs; Department of Genetics, Harvard Medical School.\n"
        "Sebastian Raschka works at Department of Statistics, University of Wisconsin-Madison.\n"
        "Timothy J. Triche, Jr. works at Center for Epigenetics, Van Andel Research Institute."),
        "Introduction"]
    assert not any(x in readable(MANUBOT_PDF) for x in ("0000-", "rasbt", "Funded"))
    assert readable(MANUBOT_HTML).split("\n\n") == [
        "Authors", "Benjamin D. Lee, Sebastian Raschka",
        "Where they work:\nBenjamin D. Lee works at In-Q-Tel Labs; Department of Genetics, Harvard Medical School.\n"
        "Sebastian Raschka works at Department of Statistics, University of Wisconsin-Madison.",
        "Abstract"]


def test_only_a_question_about_where_authors_work_is_given_where_each_works(engine):
    def passage(question: str) -> str:
        lead = Hit(rank=1, score=0.1, doc="deep-rules.pdf", page=1, chunk_id="d:0",
                   text=MANUBOT_PDF, retriever=RETRIEVER, title="Ten Quick Tips", doc_id="d")
        plan = build_prompt(question, [lead], engine, 64)
        return plan.messages[0]["content"]

    for question in ("Where does Sebastian Raschka work?", "What are the authors' affiliations?",
                     "Where do the authors work?"):
        assert "Sebastian Raschka works at" in passage(question), question
    assert "works at" not in passage("Who are the authors?")  # 1,000 tokens fewer to read


def test_a_list_of_authors_marked_with_orcid_ids_is_followed_past_the_opening():
    def row(chunk: int, text: str, doc: str = "d") -> dict:
        return {"doc_id": doc, "chunk": chunk, "page": 1, "start": 0, "end": len(text),
                "text": text}

    orcid, plain = "Anna Bell 0000-0002-7133-8397", "Department of Genetics"
    opening = row(0, f"Title\n\n{orcid}")
    rows = [row(1, orcid), row(2, plain), row(3, orcid), row(4, plain), row(5, plain),
            row(6, orcid)]
    # up to the last chunk with an iD and the one after it; two without one end the list
    assert [r["chunk"] for r in rest_of_author_list(opening, rows)] == [1, 2, 3, 4]
    assert rest_of_author_list(row(0, "Title\n\nAnna Bell"), rows) == []  # no iD, no list
    assert rest_of_author_list(opening, [row(2, orcid)]) == []  # not the next chunk
    assert rest_of_author_list(opening, [row(1, orcid, doc="e")]) == []  # another document


def test_a_person_is_found_in_the_rest_of_a_list_of_authors_marked_with_orcid_ids():
    """Asked "Where does Sebastian Raschka work?", whose name is in the sample paper's third
    chunk, the Studio answered "The documents do not say.": only the opening was looked in."""
    texts = ["Ten Quick Tips\n\nBenjamin D. Lee 0000-0002-7133-8397 · Benjamin-Lee",
             "In-Q-Tel Labs\n\nAnthony Gitter 0000-0002-5324-9833 · agitter",
             "Wisconsin\n\nSebastian Raschka 0000-0001-6989-4493 · rasbt",
             "Department of Statistics", "BERT\n\nJacob Devlin Google AI Language"]
    metas = [{"doc_id": d, "file": f"{d}.pdf", "title": t, "chunk": c, "page": 1, "section": ""}
             for d, t, c in (("s", "Ten Quick Tips", 0), ("s", "Ten Quick Tips", 1),
                             ("s", "Ten Quick Tips", 2), ("s", "Ten Quick Tips", 3),
                             ("b", "BERT", 0))]
    idx = Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas], texts, metas)
    assert opening_chunks(idx, "Where does Sebastian Raschka work?", ["b"], (), 3,
                          retrieval_answers=False) == [0]
