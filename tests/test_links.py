"""Names in a text resolved to the documents titled by them (sleuth.search.links): what the
links pipeline follows. Titles come from the hits, as any engine returns them."""

from __future__ import annotations

from sleuth.search.links import names_in, title_key, title_named
from sleuth.types import Hit


def hit(doc_id: str, title: str) -> Hit:
    return Hit(doc_id, 1.0, title, "text")


def test_names_are_capitalised_runs_and_quoted_titles() -> None:
    text = (
        'The Battle of the Somme was fought in 1916; the film "Bang Bang" starred Tom Cruise. '
        "Oscar winner Tom Hanks met Tom Cruise."
    )
    names = names_in(text)
    assert names[:3] == ["The Battle of the Somme", "Bang Bang", "Tom Cruise"]
    assert "Oscar" in names and names.count("Tom Cruise") == 1
    assert "The" not in names_in("The cat sat. A dog ran.")  # too short to be a title
    # two entities joined by "and" are searched together and each alone
    assert names_in("Between Harvey Pekar and Denise Levertov who")[:3] == [
        "Between Harvey Pekar and Denise Levertov",
        "Between Harvey Pekar",
        "Denise Levertov",
    ]


def test_a_name_resolves_to_the_hit_titled_by_it_or_its_longest_titled_run() -> None:
    hits = [hit("d1", "Tom Hanks filmography"), hit("d2", "Tom Hanks"), hit("d3", "Hanks")]
    assert title_named("Oscar winner Tom Hanks", hits).id == "d2"  # longest run that is a title
    assert title_named("Mercury", [hit("m", "Mercury (planet)")]).id == "m"
    assert title_key("Mercury (planet)") == "mercury"
    assert title_named("Nobody Here", hits) is None
    # two hits with the same title: the better ranked one
    assert title_named("Paris", [hit("p1", "Paris"), hit("p2", "Paris")]).id == "p1"
    assert title_named("Anything", [Hit("u", 1.0, "", "untitled text")]) is None
