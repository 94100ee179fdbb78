"""Answer sentence splitting never cuts a number, an abbreviation or a quotation (markers go after each)."""
import pytest

from rag.citations import split_answer
from rag.sentences import split_sentences


@pytest.mark.parametrize("text, expected", [
    ("覆盖率达78.8%。第二句。", ["覆盖率达78.8%。", "第二句。"]),
    ("It reached 41.2 billion US dollars. Next one.", ["It reached 41.2 billion US dollars.", "Next one."]),
    ("The U.S. and China agreed. Then more.", ["The U.S. and China agreed.", "Then more."]),
    ("产能3.5 万吨，完成。另一句！", ["产能3.5 万吨，完成。", "另一句！"]),
    ("《关于推进绿色“一带一路”建设的指导意见。》发布。另一句。", ["《关于推进绿色“一带一路”建设的指导意见。》发布。", "另一句。"]),
    ("他说：“很好。”然后走了。", ["他说：“很好。”然后走了。"]),
    ("See No. 5 and e.g. the annex. Done?", ["See No. 5 and e.g. the annex.", "Done?"]),
    ("全球可再生能源总装机容量达到3.37太瓦", ["全球可再生能源总装机容量达到3.37太瓦"]),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_markers_never_split_a_decimal():
    """The bug seen: "78.[1] 8%[1]", "3.[1]37太瓦", "41.[1] 2 billion US dollars[1]"."""
    assert split_answer("孵化率为78.8%。[1]") == ["孵化率为78.8%。"]
    assert split_answer("总装机容量达到3.37太瓦。") == ["总装机容量达到3.37太瓦。"]
    assert split_answer("It is 41.2 billion US dollars.[1]") == ["It is 41.2 billion US dollars."]
