from pipeline.enrich.entities import extract_entities


def test_extracts_each_sigil_kind_normalised():
    e = extract_entities("@United @DeltaAssist loving #FlyUnited $ual $AAPL's run http://t.co/abc. #1 mail me@example.com")
    assert e.handles == ["united", "deltaassist"]
    assert e.hashtags == ["flyunited"]
    assert e.cashtags == ["UAL", "AAPL"]
    assert e.urls == ["http://t.co/abc"]


def test_prices_and_url_fragments_are_not_entities():
    e = extract_entities("only $20.99 at https://shop.example.com/page#section !")
    assert e.cashtags == []
    assert e.hashtags == []
    assert e.urls == ["https://shop.example.com/page#section"]


def test_duplicates_are_removed_in_order():
    e = extract_entities("#a #b #A @x @X")
    assert e.hashtags == ["a", "b"]
    assert e.handles == ["x"]
