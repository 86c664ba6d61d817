"""Split page texts into overlapping chunks that remember their page and character span."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CHUNK_SIZE = 500  # the reference notebook's setting
DEFAULT_CHUNK_OVERLAP = 50


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int  # 1-based
    index: int  # position in the document
    start: int  # character span within the page text
    end: int


def chunk_pages(pages: list[str], chunk_size: int = DEFAULT_CHUNK_SIZE,
                chunk_overlap: int = DEFAULT_CHUNK_OVERLAP) -> list[Chunk]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if chunk_overlap >= chunk_size:
        raise ValueError(f"chunk overlap ({chunk_overlap}) must be smaller than chunk size "
                         f"({chunk_size})")
    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                                              add_start_index=True)
    chunks: list[Chunk] = []
    for page_no, text in enumerate(pages, start=1):
        for doc in splitter.create_documents([text]):
            start = doc.metadata["start_index"]
            chunks.append(Chunk(doc.page_content, page_no, len(chunks), start,
                                start + len(doc.page_content)))
    return chunks
