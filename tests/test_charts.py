"""The figures the pages draw, read back from their Plotly specs."""

from core.charts import characters_per_page


def test_characters_per_page_counts_each_page_and_ticks_whole_pages_only():
    one_page = characters_per_page([{"page": 1, "text": "a" * 300}, {"page": 1, "text": "b" * 200}],
                                   "letter")
    [bar] = one_page.data
    assert list(bar.x) == [1] and list(bar.y) == [500] and list(bar.customdata) == [2]
    assert one_page.layout.xaxis.tick0 == 1 and one_page.layout.xaxis.dtick == 1
    long = characters_per_page([{"page": n, "text": "a"} for n in range(1, 121)], "book")
    assert long.layout.xaxis.dtick == 12
