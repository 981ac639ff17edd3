"""ArticleEmbedder: same-story neighbours, title weighting, persistence, the one-article path."""

import io
import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from recommender.text.embedding import ArticleEmbedder

# Four stories, three short articles each: (title, body).
CORPUS = [
    # 0-2: flood in East Jakarta
    (
        "Banjir Rendam Ratusan Rumah di Jakarta Timur",
        "Hujan deras sejak malam membuat banjir merendam ratusan rumah warga di Jakarta Timur. "
        "Ketinggian air mencapai satu meter dan warga mengungsi ke masjid terdekat.",
    ),
    (
        "Warga Jakarta Timur Mengungsi Akibat Banjir",
        "Ratusan warga Jakarta Timur mengungsi setelah banjir setinggi satu meter merendam "
        "permukiman. Petugas membagikan makanan di posko pengungsian.",
    ),
    (
        "BPBD Catat Genangan Banjir di 40 RT Jakarta",
        "BPBD DKI Jakarta mencatat banjir menggenangi 40 RT setelah hujan deras. Pompa air "
        "dikerahkan untuk menyedot genangan di permukiman warga.",
    ),
    # 3-5: football
    (
        "Persib Bandung Kalah dari Barito Putera",
        "Persib Bandung kalah 1-2 dari Barito Putera dalam laga Liga 1. Kiper Persib mendapat "
        "kartu merah dan pelatih Luis Milla kecewa.",
    ),
    (
        "Luis Milla Kecewa Persib Gagal Menang",
        "Pelatih Persib Bandung Luis Milla kecewa timnya gagal menang melawan Barito Putera. "
        "Persib kini tertinggal dari PSM Makassar di klasemen Liga 1.",
    ),
    (
        "Klasemen Liga 1: PSM Makassar Menjauh dari Persib",
        "PSM Makassar memimpin klasemen Liga 1 setelah Persib Bandung kalah. Selisih poin PSM "
        "dan Persib kini empat poin.",
    ),
    # 6-8: rice prices
    (
        "Harga Beras Naik di Pasar Induk Cipinang",
        "Harga beras medium di Pasar Induk Cipinang naik menjadi Rp 12.000 per kilogram. "
        "Pedagang menyebut pasokan beras dari petani berkurang.",
    ),
    (
        "Bulog Gelar Operasi Pasar untuk Tekan Harga Beras",
        "Perum Bulog menggelar operasi pasar beras medium untuk menekan harga beras yang terus "
        "naik. Stok beras Bulog dinilai cukup hingga Lebaran.",
    ),
    (
        "Pedagang Keluhkan Pasokan Beras Berkurang",
        "Pedagang beras di pasar tradisional mengeluhkan pasokan beras dari petani berkurang "
        "sehingga harga beras naik setiap pekan.",
    ),
    # 9-11: a new phone
    (
        "Xiaomi Luncurkan Ponsel Baru dengan Kamera 200 MP",
        "Xiaomi meluncurkan ponsel terbaru dengan kamera 200 MP dan baterai 5.000 mAh. Ponsel "
        "ini dijual mulai pekan depan di Indonesia.",
    ),
    (
        "Spesifikasi Kamera Ponsel Xiaomi Terbaru",
        "Ponsel Xiaomi terbaru membawa kamera utama 200 MP, layar AMOLED, dan pengisian baterai cepat.",
    ),
    (
        "Harga Ponsel Xiaomi Terbaru di Indonesia",
        "Xiaomi mengumumkan harga ponsel terbaru di Indonesia. Ponsel dengan kamera 200 MP dan "
        "layar AMOLED ini dijual Rp 6 juta.",
    ),
]
TOPIC = np.repeat(np.arange(4), 3)

# Title about rice prices, body about the flood.
MIXED = ("Harga Beras Naik Lagi di Pasar", "Banjir merendam rumah warga Jakarta Timur dan warga mengungsi.")


@pytest.fixture(scope="module")
def fitted():
    return ArticleEmbedder(n_components=4, random_state=0).fit(CORPUS)


def _nearest_other(S):
    S = np.array(S, dtype=np.float64)
    np.fill_diagonal(S, -np.inf)
    return S.argmax(axis=1)


def test_fitted_attributes(fitted):
    n_features = len(fitted.vocabulary_)
    assert sorted(fitted.vocabulary_.values()) == list(range(n_features))
    assert "harga beras" in fitted.vocabulary_ and "banjir" in fitted.vocabulary_
    assert "yang" not in fitted.vocabulary_ and "dari" not in fitted.vocabulary_
    assert fitted.idf_.dtype == np.float32 and fitted.idf_.shape == (n_features,)
    assert fitted.components_.dtype == np.float32 and fitted.components_.shape == (4, n_features)
    assert fitted.n_components_ == 4
    # rarer terms weigh more: "beras" is in 3 articles, "cipinang" in 1
    vocab = fitted.vocabulary_
    assert fitted.idf_[vocab["cipinang"]] > fitted.idf_[vocab["beras"]]


def test_same_story_is_nearest_sparse_and_dense(fitted):
    W = fitted.transform_tfidf(CORPUS)
    assert sp.isspmatrix_csr(W) and W.dtype == np.float32
    np.testing.assert_allclose(sp.linalg.norm(W, axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(TOPIC[_nearest_other((W @ W.T).toarray())], TOPIC)

    Z = fitted.transform(CORPUS)
    assert Z.dtype == np.float32 and Z.shape == (12, 4)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    S = Z @ Z.T
    same = TOPIC[:, None] == TOPIC[None, :]
    off_diagonal = ~np.eye(12, dtype=bool)
    assert S[same & off_diagonal].mean() > S[~same].mean() + 0.5


def test_title_weight_decides_between_title_and_body_story():
    def nearest_topic(title_weight):
        est = ArticleEmbedder(n_components=4, title_weight=title_weight, random_state=0).fit(CORPUS)
        q = est.transform_tfidf([MIXED])
        return TOPIC[int(np.argmax((q @ est.transform_tfidf(CORPUS).T).toarray()))]

    assert nearest_topic(0.0) == 0  # body only: the flood
    assert nearest_topic(1.0) == 0  # body is longer
    assert nearest_topic(10.0) == 2  # title dominates: rice prices


def test_embed_one_matches_batch_transform(fitted):
    for title, body in [CORPUS[4], MIXED, ("Banjir", ""), ("", "Persib kalah di Bandung")]:
        dense, row = fitted.embed_one(title, body)
        assert dense.dtype == np.float32 and dense.shape == (4,)
        assert sp.isspmatrix_csr(row) and row.shape == (1, len(fitted.vocabulary_))
        np.testing.assert_allclose(dense, fitted.transform([(title, body)])[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            row.toarray(), fitted.transform_tfidf([(title, body)]).toarray(), rtol=1e-6, atol=1e-7
        )


def test_editor_links_do_not_change_the_vector(fitted):
    title, body = CORPUS[0]
    linked = body + " Baca juga: Harga Beras Naik di Pasar Induk Cipinang\nWarga tetap waspada."
    plain = body + "\nWarga tetap waspada."
    a = fitted.transform_tfidf([(title, linked)])
    b = fitted.transform_tfidf([(title, plain)])
    assert (a != b).nnz == 0


@pytest.mark.parametrize(
    "article",
    [("", ""), ("Yang dan di", "tidak akan ke dari"), ("Zzqx qwv", "lorem ipsum dolor"), (None, None)],
)
def test_empty_or_unknown_article_gives_zero_vectors(fitted, article):
    assert fitted.transform_tfidf([article]).nnz == 0
    Z = fitted.transform([article, CORPUS[0]])
    assert np.all(Z[0] == 0) and np.linalg.norm(Z[1]) == pytest.approx(1.0, rel=1e-5)
    dense, row = fitted.embed_one(*article)
    assert np.all(dense == 0) and row.nnz == 0 and row.shape[1] == len(fitted.vocabulary_)


def test_round_trip_through_npy_and_json_is_bitwise(fitted):
    arrays = fitted.to_arrays()
    assert arrays["vocabulary"].dtype.kind == "U"
    loaded = {}
    for key, value in arrays.items():
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        buf.seek(0)
        loaded[key] = np.load(buf, allow_pickle=False)
    params = json.loads(json.dumps(fitted.get_params()))
    again = ArticleEmbedder.from_arrays(loaded, params)

    assert again.get_params() == fitted.get_params()
    assert again.vocabulary_ == fitted.vocabulary_
    docs = CORPUS + [MIXED]
    assert np.array_equal(again.transform(docs), fitted.transform(docs))
    assert (again.transform_tfidf(docs) != fitted.transform_tfidf(docs)).nnz == 0
    d1, r1 = again.embed_one(*MIXED)
    d2, r2 = fitted.embed_one(*MIXED)
    assert np.array_equal(d1, d2) and (r1 != r2).nnz == 0


def test_from_arrays_rejects_inconsistent_arrays(fitted):
    arrays = fitted.to_arrays()
    with pytest.raises(ValueError, match="missing"):
        ArticleEmbedder.from_arrays({"idf": arrays["idf"]}, fitted.get_params())
    bad = dict(arrays, idf=arrays["idf"][:-1])
    with pytest.raises(ValueError, match="same to_arrays"):
        ArticleEmbedder.from_arrays(bad, fitted.get_params())


@pytest.mark.parametrize("method", ["transform", "transform_tfidf"])
def test_not_fitted_raises(method):
    with pytest.raises(NotFittedError):
        getattr(ArticleEmbedder(), method)(CORPUS)


def test_not_fitted_raises_for_one_article_and_arrays():
    with pytest.raises(NotFittedError):
        ArticleEmbedder().embed_one(*CORPUS[0])
    with pytest.raises(NotFittedError):
        ArticleEmbedder().to_arrays()


def test_n_components_clamped_to_corpus(caplog):
    with caplog.at_level("INFO", logger="recommender.text.embedding"):
        est = ArticleEmbedder(n_components=128, random_state=0).fit(CORPUS)
    assert est.n_components_ == 11  # 12 articles - 1
    assert est.components_.shape == (11, len(est.vocabulary_))
    assert est.transform(CORPUS).shape == (12, 11)
    assert "clamped from 128 to 11" in caplog.text


def test_one_article_corpus_gives_one_dimension():
    est = ArticleEmbedder(random_state=0).fit([CORPUS[0]])
    assert est.n_components_ == 1
    assert "banjir" in est.vocabulary_  # max_df=0.9 must not prune the only article away
    Z = est.transform([CORPUS[0], CORPUS[1], CORPUS[3]])
    assert abs(Z[0, 0]) == pytest.approx(1.0, rel=1e-6)
    assert abs(Z[1, 0]) == pytest.approx(1.0, rel=1e-6)  # shares flood terms
    assert Z[2, 0] == 0.0  # football shares nothing


def test_fit_transform_equals_fit_then_transform_and_takes_a_generator():
    est = ArticleEmbedder(n_components=4, random_state=0)
    Z = est.fit_transform(pair for pair in CORPUS)
    assert Z.shape == (12, 4)
    np.testing.assert_allclose(Z, est.transform(CORPUS), rtol=1e-6, atol=1e-7)


def test_fit_is_deterministic_with_random_state():
    a = ArticleEmbedder(n_components=4, random_state=7).fit(CORPUS)
    b = clone(a).fit(CORPUS)
    assert np.array_equal(a.components_, b.components_)
    assert np.array_equal(a.transform(CORPUS), b.transform(CORPUS))


def test_get_params_are_json_and_clone_keeps_them():
    est = ArticleEmbedder(n_components=16, title_weight=2.5, ngram_range=(1, 1), random_state=3)
    assert json.loads(json.dumps(est.get_params()))["title_weight"] == 2.5
    assert clone(est).get_params() == est.get_params()


def test_pruning_min_df_and_max_features():
    est = ArticleEmbedder(n_components=2, min_df=2, max_df=1.0, ngram_range=(1, 1), random_state=0).fit(CORPUS)
    assert "persib" in est.vocabulary_ and "cipinang" not in est.vocabulary_
    est = ArticleEmbedder(n_components=2, max_features=3, ngram_range=(1, 1), random_state=0).fit(CORPUS)
    assert set(est.vocabulary_) == {"beras", "persib", "ponsel"}  # the three most frequent terms
    assert list(est.vocabulary_) == sorted(est.vocabulary_)


def test_stop_words_none_keeps_function_words():
    est = ArticleEmbedder(n_components=2, stop_words=None, max_df=1.0, random_state=0).fit(CORPUS)
    assert "dari" in est.vocabulary_


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_components": 0}, "n_components"),
        ({"title_weight": -1.0}, "title_weight"),
        ({"ngram_range": (2, 1)}, "ngram_range"),
        ({"max_df": 1.5}, "max_df"),
        ({"stop_words": "english"}, "stop_words"),
    ],
)
def test_bad_params_raise_on_fit(params, match):
    est = ArticleEmbedder(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=match):
        est.fit(CORPUS)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="at least one"):
        ArticleEmbedder().fit([])
    with pytest.raises(ValueError, match="Empty vocabulary"):
        ArticleEmbedder().fit([("yang", "dan di ke")])
    with pytest.raises(ValueError, match=r"\(title, body\) pair"):
        ArticleEmbedder().fit(["just a string"])
    with pytest.raises(ValueError, match="no terms remain"):
        ArticleEmbedder(min_df=5).fit(CORPUS[:3])
