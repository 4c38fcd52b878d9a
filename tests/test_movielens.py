"""Tests of the MovieLens / RecBole loaders on tiny files in the real formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrs_recsys.data.movielens import (
    ML1M_OCCUPATIONS,
    ML100K_GENRES,
    detect_movielens_format,
    load_ml1m,
    load_ml100k,
    load_ml_latest,
    load_movielens,
    load_recbole,
)
from tfrs_recsys.errors import ConfigError, DatasetNotFoundError, DataValidationError


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)


# Lines exactly as in the original ML-100K files (no header, latin-1).
U_DATA = [
    "196\t242\t3\t881250949",
    "186\t302\t3\t891717742",
    "22\t377\t1\t878887116",
    "244\t51\t2\t880606923",
    "166\t346\t1\t886397596",
    "298\t474\t4\t884182806",
    "115\t265\t2\t881171488",
    "253\t465\t5\t891628467",
    "305\t451\t3\t886324817",
    "6\t86\t3\t883603013",
    "62\t257\t2\t879372434",
    "286\t1014\t5\t879781125",
    "200\t222\t5\t876042340",
    "210\t40\t3\t891035994",
    "224\t29\t3\t888104457",
    "303\t785\t3\t879485318",
    "122\t387\t5\t879270459",
    "194\t274\t2\t879539794",
    "291\t1042\t4\t874834944",
    "234\t1184\t2\t892079237",
]
ML100K_USERS = sorted({int(line.split("\t")[0]) for line in U_DATA})
ML100K_ITEMS = sorted({int(line.split("\t")[1]) for line in U_DATA} | {267, 543, 1682})
OCCUPATIONS_100K = ["technician", "other", "writer", "executive", "administrator", "student"]


def _u_user_lines() -> list[str]:
    return [
        f"{u}|{20 + u % 40}|{'MF'[u % 2]}|{OCCUPATIONS_100K[u % len(OCCUPATIONS_100K)]}|{85700 + u:05d}"
        for u in ML100K_USERS
    ]


def _u_item_lines() -> list[str]:
    lines = []
    for i in ML100K_ITEMS:
        if i == 267:  # as in the real file: no title date, no release date, genre unknown
            lines.append(f"267|unknown||||{_flags('unknown')}")
        elif i == 543:
            lines.append(
                f"543|Misérables, Les (1995)|01-Jan-1995||"
                f"http://us.imdb.com/M/title-exact?Mis%E9rables%2C%20Les%20%281995%29|{_flags('Drama', 'Musical')}"
            )
        elif i == 1682:  # no release date: year from the title
            lines.append(
                f"1682|Scream of Stone (Schrei aus Stein) (1991)|||http://x|{_flags('Drama')}"
            )
        else:
            lines.append(
                f"{i}|Movie {i} (19{i % 100:02d})|01-Jan-19{i % 100:02d}||http://us.imdb.com/M/{i}|"
                f"{_flags('Action', 'Sci-Fi') if i % 2 else _flags('Comedy')}"
            )
    return lines


def _write(path: Path, lines: list[str], encoding: str = "utf-8", *, end: str = "\n") -> Path:
    path.write_bytes((end.join(lines) + (end if lines else "")).encode(encoding))
    return path


def write_ml100k(
    directory: Path,
    *,
    data: list[str] | None = None,
    users: list[str] | None = None,
    items: list[str] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "u.data", U_DATA if data is None else data, "latin-1")
    _write(directory / "u.user", _u_user_lines() if users is None else users, "latin-1")
    _write(directory / "u.item", _u_item_lines() if items is None else items, "latin-1")
    return directory


ML1M_RATINGS = [
    "1::1193::5::978300760",
    "1::661::3::978302109",
    "2::1193::4::978298413",
    "1::914::3::978301968",
    "3::3408::4::978300275",
    "2::2355::5::978824291",
    "3::1197::3::978302268",
]


def write_ml1m(
    directory: Path,
    *,
    ratings: list[str] | None = None,
    users: list[str] | None = None,
    movies: list[str] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "ratings.dat", ML1M_RATINGS if ratings is None else ratings, "latin-1")
    _write(
        directory / "users.dat",
        ["1::F::1::10::48067", "2::M::56::16::70072", "3::M::25::15::55117", "4::M::45::7::02460"]
        if users is None
        else users,
        "latin-1",
    )
    _write(
        directory / "movies.dat",
        [
            "1193::One Flew Over the Cuckoo's Nest (1975)::Drama",
            "661::James and the Giant Peach (1996)::Animation|Children's|Musical",
            "914::My Fair Lady (1964)::Musical|Romance",
            "3408::Erin Brockovich (2000)::Drama",
            "2355::Bug's Life, A (1998)::Animation|Children's|Comedy",
            "1197::Princess Bride, The (1987)::Action|Adventure|Comedy|Romance",
            "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi",
            "3952::Contender, The (2000)::Drama|Thriller",
            "1::Café au lait (1993)::Comedy",
        ]
        if movies is None
        else movies,
        "latin-1",
    )
    return directory


LATEST_RATINGS = [
    "userId,movieId,rating,timestamp",
    "1,1,4.0,964982703",
    "1,3,4.0,964981247",
    "1,6,3.5,964982224",
    "5,1,5.0,964983815",
    "2,50,0.5,964982931",
    "5,6,4.5,1147868414",
]
LATEST_MOVIES = [
    "movieId,title,genres",
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
    '3,"Grumpier Old Men, The (1995)",Comedy|Romance',
    "6,Heat (1995),Action|Crime|Thriller",
    '50,"Usual Suspects, The (1995)",Crime|Mystery|Thriller',
    "114709,Babylon 5,(no genres listed)",
    '193609,"Andrew Dice Clay: Dice Rules (1991)",Comedy',
    "99999,Amélie (Fabuleux destin d'Amélie Poulain Le) (2001),Comedy|Romance",
]
LATEST_TAGS = [
    "userId,movieId,tag,timestamp",
    "2,1,pixar,1445714994",
    "3,1,fun,1445714996",
    "4,1,pixar,1445714997",
    '5,6,"heist, classic",1445715000',
    "6,3,moldy,1445715001",
]


def write_latest(
    directory: Path,
    *,
    ratings: list[str] | None = None,
    movies: list[str] | None = None,
    tags: list[str] | None = LATEST_TAGS,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "ratings.csv", LATEST_RATINGS if ratings is None else ratings)
    _write(directory / "movies.csv", LATEST_MOVIES if movies is None else movies)
    if tags is not None:
        _write(directory / "tags.csv", tags)
    return directory


RECBOLE_INTER = [
    "user_id:token\titem_id:token\trating:float\ttimestamp:float",
    "196\t242\t3\t881250949",
    "186\t302\t4\t891717742",
    "196\t302\t5\t881251000",
    "22\t1\t4\t878887116",
]
RECBOLE_USER = [
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
    "196\t49\tM\twriter\t55105",
    "186\t39\tF\texecutive\t00000",
    "22\t25\tM\twriter\t40206",
    "1\t24\tM\ttechnician\t85711",
]
RECBOLE_ITEM = [
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
    "1\tToy Story\t1995\tAnimation Children's Comedy",
    "242\tKolya\t1996\tComedy",
    "302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller",
    "267\tunkonwn\tunkonwn\tunknown",
    "543\tMisérables, Les\t1995\tDrama Musical",
]


def write_recbole(
    directory: Path,
    stem: str = "ml-100k",
    *,
    inter: list[str] | None = None,
    user: list[str] | None = RECBOLE_USER,
    item: list[str] | None = RECBOLE_ITEM,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / f"{stem}.inter", RECBOLE_INTER if inter is None else inter)
    if user is not None:
        _write(directory / f"{stem}.user", user)
    if item is not None:
        _write(directory / f"{stem}.item", item)
    return directory


# --------------------------------------------------------------------------- #
# Happy paths
# --------------------------------------------------------------------------- #


def test_ml100k_original_files(tmp_path: Path) -> None:
    directory = write_ml100k(tmp_path / "ml-100k")
    data = load_ml100k(directory)

    assert data.schema.name == "movielens-100k"
    assert data.schema.timestamp == "timestamp"
    assert data.schema.user_segment is None
    assert data.schema.user_columns == ("user_id", "age", "profession", "gender")
    assert data.schema.item_columns == ("item_id", "title", "genres", "year")
    genres = data.schema.feature("item", "genres")
    assert (genres.kind, genres.separator, genres.as_text) == ("categorical_list", "|", True)
    assert data.schema.feature("item", "title").kind == "text"
    assert data.schema.feature("user", "age").kind == "numeric"

    assert data.n_users == len(ML100K_USERS)
    assert data.n_items == len(ML100K_ITEMS)  # the whole catalog, rated or not
    assert data.users["user_id"].tolist() == [str(u) for u in ML100K_USERS]
    assert data.users["age"].dtype == np.float64
    first = data.users.iloc[0]
    assert (first["user_id"], first["age"], first["gender"]) == ("6", 26.0, "M")
    assert first["profession"] == OCCUPATIONS_100K[0]

    items = data.items.set_index("item_id")
    assert items.loc["543", "title"] == "Misérables, Les (1995)"  # latin-1 decoded
    assert items.loc["543", "genres"] == "Drama|Musical"
    assert items.loc["267", "genres"] == "unknown"
    assert items.loc["51", "genres"] == "Action|Sci-Fi"
    assert items.loc["543", "year"] == 1995.0
    assert items.loc["1682", "year"] == 1991.0  # no release date: from the title
    parsed = items["year"].drop(index="267")
    assert items.loc["267", "year"] == np.floor(parsed.median())  # unparsable: the median

    assert data.n_raw_interactions == len(U_DATA)
    expected = [line.split("\t") for line in U_DATA if int(line.split("\t")[2]) >= 4]
    inter = data.interactions
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert inter[["user_id", "item_id"]].values.tolist() == [[u, i] for u, i, _, _ in expected]
    assert inter["rating"].tolist() == [float(r) for _, _, r, _ in expected]
    assert inter["timestamp"].dtype == np.int64
    assert inter["timestamp"].tolist() == [int(t) for _, _, _, t in expected]
    assert inter["rating"].dtype == np.float64
    assert data.source == str(directory)
    users_idx, items_idx = data.encode()
    assert len(users_idx) == len(items_idx) == len(expected)


def test_min_rating_keeps_file_order(tmp_path: Path) -> None:
    directory = write_ml100k(tmp_path)
    data = load_ml100k(directory, min_rating=3)
    kept = [line.split("\t")[:2] for line in U_DATA if int(line.split("\t")[2]) >= 3]
    assert data.interactions[["user_id", "item_id"]].values.tolist() == kept
    assert len(load_ml100k(directory, min_rating=0).interactions) == len(U_DATA)
    with pytest.raises(ConfigError, match="min_rating"):
        load_ml100k(directory, min_rating="high")  # type: ignore[arg-type]


def test_ml1m(tmp_path: Path) -> None:
    directory = write_ml1m(tmp_path / "ml-1m")
    data = load_movielens(directory)
    assert data.schema.name == "movielens-1m"
    assert data.users["user_id"].tolist() == ["1", "2", "3", "4"]
    assert data.users["profession"].tolist() == [
        "K-12 student",
        "self-employed",
        "scientist",
        "executive/managerial",
    ]
    assert data.users["age"].tolist() == [1.0, 56.0, 25.0, 45.0]
    assert data.users["gender"].tolist() == ["F", "M", "M", "M"]
    items = data.items.set_index("item_id")
    assert len(items) == 9
    assert items.loc["260", "title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert items.loc["260", "genres"] == "Action|Adventure|Fantasy|Sci-Fi"
    assert items.loc["260", "year"] == 1977.0
    assert items.loc["1", "title"] == "Café au lait (1993)"
    assert data.n_raw_interactions == 7
    assert data.interactions[["user_id", "item_id"]].values.tolist() == [
        ["1", "1193"],
        ["2", "1193"],
        ["3", "3408"],
        ["2", "2355"],
    ]
    assert data.interactions["timestamp"].tolist() == [978300760, 978298413, 978300275, 978824291]
    assert len(ML1M_OCCUPATIONS) == 21


def test_ml_latest_with_tags(tmp_path: Path) -> None:
    directory = write_latest(tmp_path / "ml-latest-small")
    data = load_movielens(directory)
    assert data.schema.name == "movielens-latest-small"
    assert data.schema.item_columns == ("item_id", "title", "genres", "tags", "year")
    assert data.schema.feature("item", "tags").kind == "text"
    assert data.schema.user_columns == ("user_id",)
    assert data.users["user_id"].tolist() == ["1", "5", "2"]  # first appearance
    items = data.items.set_index("item_id")
    assert items.index.tolist() == ["1", "3", "6", "50", "114709", "193609", "99999"]
    assert items.loc["3", "title"] == "Grumpier Old Men, The (1995)"
    assert items.loc["114709", "genres"] == ""
    assert items.loc["1", "tags"] == "pixar, fun"
    assert items.loc["6", "tags"] == "heist, classic"
    assert items.loc["50", "tags"] == ""
    assert items.loc["99999", "title"].startswith("Amélie")
    assert items.loc["193609", "year"] == 1991.0
    assert items.loc["114709", "year"] == np.floor(items["year"].drop(index="114709").median())
    assert data.n_raw_interactions == 6
    assert data.interactions[["user_id", "item_id"]].values.tolist() == [
        ["1", "1"],
        ["1", "3"],
        ["5", "1"],
        ["5", "6"],
    ]
    assert data.interactions["rating"].tolist() == [4.0, 4.0, 5.0, 4.5]


def test_ml_latest_tags_edge_cases(tmp_path: Path) -> None:
    tags = LATEST_TAGS + [",50,,1445715009", "7,50,noir,1445715010", "7,50, noir ,1445715011"]
    data = load_ml_latest(write_latest(tmp_path / "a", tags=tags))
    assert data.items.set_index("item_id").loc["50", "tags"] == "noir"
    error = _error(load_ml_latest, write_latest(tmp_path / "b", tags=LATEST_TAGS[:1]))
    assert (Path(error.file).name, "no data rows" in str(error)) == ("tags.csv", True)


def test_ml_latest_without_tags_and_plain_dir_name(tmp_path: Path) -> None:
    directory = write_latest(tmp_path / "movies", tags=None)
    data = load_ml_latest(directory)
    assert data.schema.name == "movielens-latest"
    assert "tags" not in data.schema.item_columns


def test_recbole_ml100k(tmp_path: Path) -> None:
    directory = write_recbole(tmp_path / "ml-100k")
    data = load_movielens(directory)
    assert data.schema.name == "movielens-100k"
    assert data.schema.user_columns == ("user_id", "age", "profession", "gender")
    assert data.schema.item_columns == ("item_id", "title", "genres", "year")
    assert "zip_code" not in data.users.columns
    users = data.users.set_index("user_id")
    assert users.loc["186", "profession"] == "executive"
    assert users.loc["186", "age"] == 39.0
    items = data.items.set_index("item_id")
    assert items.loc["302", "genres"] == "Crime|Film-Noir|Mystery|Thriller"
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert items.loc["543", "title"] == "Misérables, Les"
    assert items.loc["302", "year"] == 1997.0
    assert items.loc["267", "year"] == 1995.0  # median of 1995, 1995, 1996, 1997
    assert data.n_raw_interactions == 4
    assert data.interactions[["user_id", "item_id"]].values.tolist() == [
        ["186", "302"],
        ["196", "302"],
        ["22", "1"],
    ]
    assert data.interactions["timestamp"].dtype == np.int64
    # The .inter file itself can be passed too.
    same = load_movielens(directory / "ml-100k.inter")
    pd.testing.assert_frame_equal(same.interactions, data.interactions)


def test_recbole_without_user_and_item_files(tmp_path: Path) -> None:
    directory = write_recbole(tmp_path, stem="mydata", user=None, item=None)
    data = load_recbole(directory)
    assert data.schema.name == "mydata"
    assert data.users["user_id"].tolist() == ["196", "186", "22"]
    assert data.items["item_id"].tolist() == ["242", "302", "1"]
    assert data.schema.user_columns == ("user_id",)
    assert data.schema.item_columns == ("item_id",)


def test_original_and_recbole_agree(tmp_path: Path) -> None:
    write_ml100k(tmp_path / "orig")
    inter = [RECBOLE_INTER[0]] + U_DATA
    users = [RECBOLE_USER[0]] + [line.replace("|", "\t") for line in _u_user_lines()]
    items = [RECBOLE_ITEM[0]] + [f"{i}\tMovie {i}\t1995\tDrama" for i in ML100K_ITEMS]
    write_recbole(tmp_path / "rb", inter=inter, user=users, item=items)
    original = load_movielens(tmp_path / "orig")
    recbole = load_movielens(tmp_path / "rb")
    pd.testing.assert_frame_equal(original.interactions, recbole.interactions)
    pd.testing.assert_frame_equal(original.users, recbole.users)
    assert original.items["item_id"].tolist() == recbole.items["item_id"].tolist()


# --------------------------------------------------------------------------- #
# Detection and missing files
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("writer", "expected"),
    [
        (write_ml100k, "ml-100k"),
        (write_ml1m, "ml-1m"),
        (write_latest, "ml-latest"),
        (write_recbole, "recbole"),
    ],
)
def test_detect_format(tmp_path: Path, writer, expected: str) -> None:
    assert detect_movielens_format(writer(tmp_path / "d")) == expected


def test_no_known_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DatasetNotFoundError) as info:
        load_movielens(tmp_path)
    message = str(info.value)
    for marker in ("u.data", "ratings.dat", "ratings.csv", "*.inter", str(tmp_path)):
        assert marker in message
    with pytest.raises(DatasetNotFoundError, match="not a directory"):
        load_movielens(tmp_path / "nope")


def test_missing_file_named(tmp_path: Path) -> None:
    directory = write_ml100k(tmp_path)
    (directory / "u.item").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing u\.item") as info:
        load_movielens(directory)
    assert str(directory) in str(info.value)
    write_ml1m(tmp_path / "one")
    (tmp_path / "one" / "users.dat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"users\.dat"):
        load_movielens(tmp_path / "one")


def test_several_inter_files(tmp_path: Path) -> None:
    write_recbole(tmp_path, stem="a")
    write_recbole(tmp_path, stem="b")
    with pytest.raises(ConfigError, match="several"):
        load_movielens(tmp_path)
    assert load_movielens(tmp_path / "b.inter").schema.name == "b"


# --------------------------------------------------------------------------- #
# Validation errors
# --------------------------------------------------------------------------- #


def _error(loader, directory: Path) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        loader(directory)
    return info.value


@pytest.mark.parametrize("name", ["u.data", "u.user", "u.item"])
def test_ml100k_empty_files(tmp_path: Path, name: str) -> None:
    directory = write_ml100k(tmp_path)
    (directory / name).write_bytes(b"")
    error = _error(load_ml100k, directory)
    assert error.file == str(directory / name)
    assert "empty" in str(error)


@pytest.mark.parametrize(
    ("lines", "line", "column", "text"),
    [
        (
            U_DATA[:3] + ["22\t377\t1"] + U_DATA[4:],
            4,
            None,
            "expected 4 tab-separated fields, found 3",
        ),
        (U_DATA[:2] + ["22\t377\t1\t878887116\t9"] + U_DATA[3:], 3, None, "found 5"),
        (["196\t242\t3\t881250949\t1"] + U_DATA[1:], 1, None, "found 5"),
        (U_DATA[:5] + ["166\t346\tgood\t886397596"] + U_DATA[6:], 6, "rating", "'good'"),
        (U_DATA[:1] + ["186\t302\t3\tyesterday"] + U_DATA[2:], 2, "timestamp", "'yesterday'"),
        (U_DATA[:1] + ["186\t\t3\t891717742"] + U_DATA[2:], 2, "item_id", "empty id"),
        (U_DATA[:7] + [""] + U_DATA[7:], 8, None, "blank line"),
        (U_DATA[:7] + ["999\t242\t3\t881250949"] + U_DATA[7:], 8, "user_id", "'999'"),
        (U_DATA[:9] + ["196\t4242\t3\t881250949"] + U_DATA[9:], 10, "item_id", "'4242'"),
    ],
)
def test_ml100k_bad_ratings(
    tmp_path: Path, lines: list[str], line: int, column: str | None, text: str
) -> None:
    directory = write_ml100k(tmp_path, data=lines)
    error = _error(load_ml100k, directory)
    assert error.file == str(directory / "u.data")
    assert error.line == line
    assert error.column == column
    assert text in str(error)
    assert f"line {line}" in str(error)


def test_blank_first_lines_are_named(tmp_path: Path) -> None:
    """A blank line before the data is reported at its line, not as an empty file."""
    error = _error(load_ml100k, write_ml100k(tmp_path / "a", data=["", *U_DATA]))
    assert (Path(error.file).name, error.line) == ("u.data", 1)
    assert "blank line" in str(error)
    ratings = [LATEST_RATINGS[0], "", *LATEST_RATINGS[1:]]
    error = _error(load_ml_latest, write_latest(tmp_path / "b", ratings=ratings))
    assert (Path(error.file).name, error.line) == ("ratings.csv", 2)
    assert "blank line" in str(error)


def test_trailing_blank_lines_are_fine(tmp_path: Path) -> None:
    directory = write_ml100k(tmp_path, data=U_DATA + ["", ""], users=_u_user_lines() + [""])
    assert load_ml100k(directory).n_raw_interactions == len(U_DATA)
    crlf = tmp_path / "crlf"
    write_ml100k(crlf)
    _write(crlf / "u.data", U_DATA, "latin-1", end="\r\n")
    _write(crlf / "u.user", _u_user_lines(), "latin-1", end="\r\n")
    data = load_ml100k(crlf)
    assert data.users["profession"].iloc[0] == OCCUPATIONS_100K[0]
    assert data.interactions["timestamp"].iloc[0] == 884182806


def test_ml100k_bad_users_and_items(tmp_path: Path) -> None:
    users = _u_user_lines()
    bad_age = users[:2] + [users[2].replace("|", "|x", 1)] + users[3:]
    error = _error(load_ml100k, write_ml100k(tmp_path / "a", users=bad_age))
    assert (Path(error.file).name, error.line, error.column) == ("u.user", 3, "age")

    duplicated = users + [users[1]]
    error = _error(load_ml100k, write_ml100k(tmp_path / "b", users=duplicated))
    assert (Path(error.file).name, error.line, error.column) == (
        "u.user",
        len(users) + 1,
        "user_id",
    )
    assert "duplicate id" in str(error) and "line 2" in str(error)

    items = _u_item_lines()
    error = _error(load_ml100k, write_ml100k(tmp_path / "c", items=items + [items[0]]))
    assert (Path(error.file).name, error.line, error.column) == (
        "u.item",
        len(items) + 1,
        "item_id",
    )

    short = items[:1] + [items[1].rsplit("|", 1)[0]] + items[2:]
    error = _error(load_ml100k, write_ml100k(tmp_path / "d", items=short))
    assert (Path(error.file).name, error.line) == ("u.item", 2)
    assert "expected 24 '|'-separated fields, found 23" in str(error)

    bad_flag = items[:3] + [items[3][:-1] + "2"] + items[4:]
    error = _error(load_ml100k, write_ml100k(tmp_path / "e", items=bad_flag))
    assert (error.line, error.column) == (4, "Western")


def test_ml1m_errors(tmp_path: Path) -> None:
    error = _error(load_ml1m, write_ml1m(tmp_path / "a", ratings=ML1M_RATINGS[:2] + ["2::1193::4"]))
    assert (Path(error.file).name, error.line) == ("ratings.dat", 3)
    assert "expected 4 '::'-separated fields, found 3" in str(error)

    error = _error(
        load_ml1m, write_ml1m(tmp_path / "b", ratings=["1::1193::5:978300760"] + ML1M_RATINGS)
    )
    assert (Path(error.file).name, error.line) == ("ratings.dat", 1)

    error = _error(
        load_ml1m, write_ml1m(tmp_path / "c", ratings=ML1M_RATINGS + ["3::1193::five::978300760"])
    )
    assert (error.line, error.column) == (8, "rating")

    users = ["1::F::1::10::48067", "2::M::56::21::70072", "3::M::25::15::55117"]
    error = _error(load_ml1m, write_ml1m(tmp_path / "d", users=users))
    assert (Path(error.file).name, error.line, error.column) == ("users.dat", 2, "occupation")
    assert "unknown occupation code '21'" in str(error)

    error = _error(
        load_ml1m, write_ml1m(tmp_path / "e", users=["1::F::1::10::48067", "2::M::56::16::70072"])
    )
    assert (Path(error.file).name, error.line, error.column) == ("ratings.dat", 5, "user_id")
    assert "'3'" in str(error) and "users.dat" in str(error)


def test_ml_latest_errors(tmp_path: Path) -> None:
    error = _error(load_ml_latest, write_latest(tmp_path / "a", ratings=LATEST_RATINGS[:1]))
    assert (Path(error.file).name, str(error).endswith("no data rows")) == ("ratings.csv", True)

    bad = LATEST_RATINGS[:3] + ["1,6,3.5,964982224,7"] + LATEST_RATINGS[4:]
    error = _error(load_ml_latest, write_latest(tmp_path / "b", ratings=bad))
    assert (Path(error.file).name, error.line) == ("ratings.csv", 4)
    assert "expected 4 comma-separated fields, found 5" in str(error)

    bad = LATEST_RATINGS[:2] + ["1,3,four,964981247"] + LATEST_RATINGS[3:]
    error = _error(load_ml_latest, write_latest(tmp_path / "c", ratings=bad))
    assert (error.line, error.column) == (3, "rating")

    bad = LATEST_RATINGS + ["7,4242,4.0,964982703"]
    error = _error(load_ml_latest, write_latest(tmp_path / "d", ratings=bad))
    assert (error.line, error.column) == (len(bad), "movieId")
    assert "'4242'" in str(error)

    renamed = ["user,movie,rating,timestamp"] + LATEST_RATINGS[1:]
    error = _error(load_ml_latest, write_latest(tmp_path / "e", ratings=renamed))
    assert error.line == 1 and "userId" in str(error)

    directory = write_latest(tmp_path / "f")
    (directory / "ratings.csv").write_bytes(
        "\n".join(LATEST_RATINGS[:3]).encode() + b"\n1,6,\xff,1\n"
    )
    error = _error(load_ml_latest, directory)
    assert (Path(error.file).name, error.line, error.column) == ("ratings.csv", 4, "rating")
    assert "not valid UTF-8 (byte 0xff at position 5 of the line)" in str(error)

    movies = LATEST_MOVIES + [LATEST_MOVIES[2]]
    error = _error(load_ml_latest, write_latest(tmp_path / "g", movies=movies))
    assert (Path(error.file).name, error.line, error.column) == (
        "movies.csv",
        len(movies),
        "movieId",
    )

    tags = LATEST_TAGS + ["1,31337,odd,1445715002"]
    error = _error(load_ml_latest, write_latest(tmp_path / "h", tags=tags))
    assert (Path(error.file).name, error.line) == ("tags.csv", len(tags))


def test_recbole_errors(tmp_path: Path) -> None:
    error = _error(load_recbole, write_recbole(tmp_path / "a", inter=RECBOLE_INTER[:1]))
    assert "no data rows" in str(error)

    inter = ["user_id:token\titem_id:token\trating:float"] + [
        row.rsplit("\t", 1)[0] for row in RECBOLE_INTER[1:]
    ]
    error = _error(load_recbole, write_recbole(tmp_path / "b", inter=inter))
    assert error.line == 1 and "timestamp" in str(error)

    inter = RECBOLE_INTER[:2] + ["186\t302\t4.5x\t891717742"] + RECBOLE_INTER[3:]
    error = _error(load_recbole, write_recbole(tmp_path / "c", inter=inter))
    assert (error.line, error.column) == (3, "rating")

    user = RECBOLE_USER[:3] + ["22\ttwenty\tM\twriter\t40206"]
    error = _error(load_recbole, write_recbole(tmp_path / "d", user=user))
    assert (Path(error.file).name, error.line, error.column) == ("ml-100k.user", 4, "age")

    item = RECBOLE_ITEM[:3] + RECBOLE_ITEM[4:]  # item 302 is rated but no longer in .item
    error = _error(load_recbole, write_recbole(tmp_path / "e", item=item))
    assert (Path(error.file).name, error.line) == ("ml-100k.inter", 3)
    assert "'302'" in str(error)

    inter = RECBOLE_INTER + ["22\t1\t4"]
    error = _error(load_recbole, write_recbole(tmp_path / "f", inter=inter))
    assert error.line == len(inter) and "found 3" in str(error)


# --------------------------------------------------------------------------- #
# Ratings on each format's scale
# --------------------------------------------------------------------------- #

WHOLE_STARS_TEXT = "is not on the ML-100K / ML-1M rating scale (whole numbers 1 to 5)"
HALF_STARS_TEXT = "rating scale (0.5 to 5.0 in steps of 0.5)"


@pytest.mark.parametrize(("rating", "shown"), [("7", "7"), ("0", "0"), ("4.5", "4.5")])
def test_ml100k_rating_off_the_scale(tmp_path: Path, rating: str, shown: str) -> None:
    """A 7 would otherwise pass min_rating and become a positive."""
    data = U_DATA[:3] + [f"244\t51\t{rating}\t880606923"] + U_DATA[4:]
    error = _error(load_ml100k, write_ml100k(tmp_path, data=data))
    assert (Path(error.file).name, error.line, error.column) == ("u.data", 4, "rating")
    assert error.problem == f"rating {shown} {WHOLE_STARS_TEXT}; fix or remove the line"


def test_ml1m_rating_off_the_scale(tmp_path: Path) -> None:
    ratings = ML1M_RATINGS[:2] + ["2::1193::7::978298413"] + ML1M_RATINGS[3:]
    error = _error(load_ml1m, write_ml1m(tmp_path, ratings=ratings))
    assert (Path(error.file).name, error.line, error.column) == ("ratings.dat", 3, "rating")
    assert error.problem.startswith(f"rating 7 {WHOLE_STARS_TEXT}")


@pytest.mark.parametrize(("rating", "shown"), [("6.0", "6"), ("0.0", "0"), ("4.3", "4.3")])
def test_ml_latest_rating_off_the_scale(tmp_path: Path, rating: str, shown: str) -> None:
    ratings = LATEST_RATINGS[:4] + [f"5,1,{rating},964983815"] + LATEST_RATINGS[5:]
    error = _error(load_ml_latest, write_latest(tmp_path, ratings=ratings))
    assert (Path(error.file).name, error.line, error.column) == ("ratings.csv", 5, "rating")
    assert error.problem.startswith(f"rating {shown} is not on the ml-latest")
    assert HALF_STARS_TEXT in error.problem


def test_recbole_movielens_stems_have_their_scale(tmp_path: Path) -> None:
    inter = RECBOLE_INTER[:2] + ["186\t302\t7\t891717742"] + RECBOLE_INTER[3:]
    error = _error(load_recbole, write_recbole(tmp_path / "a", inter=inter))
    assert (Path(error.file).name, error.line, error.column) == ("ml-100k.inter", 3, "rating")
    assert WHOLE_STARS_TEXT in error.problem
    # Other RecBole datasets have scales of their own: any finite rating is read.
    data = load_recbole(write_recbole(tmp_path / "b", "other", inter=inter, user=None, item=None))
    assert 7.0 in data.interactions["rating"].tolist()


def test_timestamp_out_of_range(tmp_path: Path) -> None:
    """float 1e30 would become int64 -9223372036854775808 without a word."""
    ratings = LATEST_RATINGS[:2] + ["1,3,4.0,1e30"] + LATEST_RATINGS[3:]
    error = _error(load_ml_latest, write_latest(tmp_path, ratings=ratings))
    assert (error.line, error.column) == (3, "timestamp")
    assert "out of range" in error.problem


# --------------------------------------------------------------------------- #
# Files that are there but are not readable files
# --------------------------------------------------------------------------- #


def test_optional_tags_file_that_is_a_directory(tmp_path: Path) -> None:
    directory = write_latest(tmp_path, tags=None)
    (directory / "tags.csv").mkdir()
    error = _error(load_ml_latest, directory)
    assert (error.file, error.problem) == (
        str(directory / "tags.csv"),
        "is a directory (expected a file)",
    )


@pytest.mark.parametrize("suffix", [".user", ".item"])
def test_optional_recbole_file_that_is_a_directory(tmp_path: Path, suffix: str) -> None:
    directory = write_recbole(tmp_path, user=None, item=None)
    (directory / f"ml-100k{suffix}").mkdir()
    error = _error(load_recbole, directory)
    assert error.file == str(directory / f"ml-100k{suffix}")


def test_marker_file_that_is_a_link_loop_is_named(tmp_path: Path) -> None:
    """u.data marks the ML-100K format even when it cannot be read, so the error names it."""
    directory = write_ml100k(tmp_path)
    (directory / "u.data").unlink()
    (directory / "u.data").symlink_to("u.data")
    assert detect_movielens_format(directory) == "ml-100k"
    error = _error(load_movielens, directory)
    assert (error.file, error.problem) == (
        str(directory / "u.data"),
        "is a symbolic link loop (expected a file)",
    )


def test_required_file_that_is_a_directory(tmp_path: Path) -> None:
    directory = write_ml100k(tmp_path)
    (directory / "u.user").unlink()
    (directory / "u.user").mkdir()
    error = _error(load_ml100k, directory)
    assert (error.file, error.problem) == (
        str(directory / "u.user"),
        "is a directory (expected a file)",
    )


def test_utf16_ratings_file(tmp_path: Path) -> None:
    directory = write_latest(tmp_path)
    (directory / "ratings.csv").write_bytes("\n".join(LATEST_RATINGS).encode("utf-16"))
    error = _error(load_ml_latest, directory)
    assert (Path(error.file).name, error.line) == ("ratings.csv", 1)
    assert error.problem.startswith("looks like UTF-16")


def test_a_pair_rated_twice_names_both_lines(tmp_path: Path) -> None:
    """A repeated (user, item) would count as two positives, possibly one in train
    and one in the holdout."""
    data = U_DATA[:5] + ["298\t474\t5\t884182999"] + U_DATA[5:]  # 298 rated 474 on line 6
    error = _error(load_ml100k, write_ml100k(tmp_path, data=data))
    assert (Path(error.file).name, error.line, error.column) == ("u.data", 7, "item_id")
    assert error.problem == (
        "user '298' rates item '474' a second time (first on line 6); keep one rating per pair"
    )
