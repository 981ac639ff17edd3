"""Indonesian text cleaning: stop words, normalization, tokens, page furniture, editor links."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.text.cleaning import STOP_WORDS, extract_editor_links, normalize, strip_furniture, tokenize

# Kompas layout: list string, double-escaped entities, the linked title runs straight into
# the next sentence, newsletter footer at the end.
KOMPAS_BODY = (
    "['JAKARTA,&amp;nbsp;KOMPAS.com&amp;nbsp;- Harga beras medium di Pasar Induk Cipinang naik. "
    "&amp;ldquo;Pasokan dari petani berkurang,&amp;rdquo; kata Budi. "
    "Baca juga: Bulog Gelar Operasi Pasar di Jakarta Timur Menurut pedagang, kenaikan terjadi sejak Senin. "
    "Dapatkan update berita pilihan dan breaking news setiap hari dari Kompas.com. Mari bergabung di "
    "Grup Telegram &quot;Kompas.com News Update&quot;, caranya klik link https://t.me/kompascomupdate.']"
)

# Tribunnews layout: the scraper turned commas into full stops, so one linked title spans
# several title-case "sentences".
TRIBUN_BODY = (
    "TRIBUNNEWS.COM - Persib Bandung kalah dari Barito Putera pada Senin malam. "
    "Baca juga: Fakta Menarik Kekalahan Persi. PSM Butuh 5 Laga Buat Juara Liga . Teja Bikin Maung Meran. "
    "Barito Putera seolah mendapat kekuatan kembali di babak kedua."
)


# --- stop words -------------------------------------------------------------------------------


def test_stop_words_loaded_from_resource():
    assert isinstance(STOP_WORDS, frozenset)
    assert {"yang", "dan", "di", "tidak", "adalah", "mengatakan", "nggak"} <= STOP_WORDS
    assert not {"presiden", "banjir", "beras", "persib", "senin"} & STOP_WORDS
    assert all(w == w.strip().lower() and w and not w.startswith("#") for w in STOP_WORDS)


# --- normalize and tokenize ------------------------------------------------------------------


def test_normalize_drops_urls_emails_numbers_and_punctuation():
    text = "Cek https://t.me/kompas, www.contoh.id atau redaksi@kompas.com! Harga Rp 12.000 (27/2/2023)."
    assert normalize(text) == "cek atau harga rp"


def test_normalize_keeps_alphanumeric_words_and_splits_hyphens():
    assert normalize("Xiaomi 13 dan PS5, COVID-19  di   Jakarta-Timur") == "xiaomi dan ps5 covid di jakarta timur"


def test_normalize_lowercases_unicode_and_handles_empty():
    assert normalize("Café ÉLITE") == "café élite"
    assert normalize("") == ""
    assert normalize("  2023 ...  ") == ""


def test_tokenize_drops_stop_words_and_one_letter_tokens():
    tokens = tokenize("Presiden Joko Widodo mengatakan bahwa harga beras di pasar tidak akan naik, kata dia. A B")
    assert tokens == ["presiden", "joko", "widodo", "harga", "beras", "pasar", "naik"]


def test_tokenize_without_stop_words_keeps_them():
    assert tokenize("Harga beras yang naik", stop_words=None) == ["harga", "beras", "yang", "naik"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + " .,:;!?-'\"()@/" + "éü", max_size=200))
def test_tokenize_properties(text):
    tokens = tokenize(text)
    for token in tokens:
        assert token == token.lower()
        assert len(token) > 1
        assert token not in STOP_WORDS
        assert not token.isdigit()
        assert token.isalnum()
    assert tokens == [t for t in normalize(text).split() if len(t) > 1 and t not in STOP_WORDS]


# --- strip_furniture ---------------------------------------------------------------------------


def test_strip_furniture_kompas_body():
    out = strip_furniture(KOMPAS_BODY)
    assert out.startswith("JAKARTA, - Harga beras medium di Pasar Induk Cipinang naik.")
    assert "“Pasokan dari petani berkurang,” kata Budi." in out
    # the linked title goes, the prose after it stays
    assert "Bulog" not in out and "Operasi Pasar" not in out and "Baca" not in out
    assert "pedagang, kenaikan terjadi sejak Senin." in out
    # footer, entities, brand in the dateline and the URL are gone
    for gone in ("Dapatkan", "Telegram", "t.me", "&amp;", "&nbsp;", "nbsp", "KOMPAS.com", "['", "']"):
        assert gone not in out


def test_strip_furniture_tribun_title_split_by_full_stops():
    out = strip_furniture(TRIBUN_BODY)
    assert out == (
        "- Persib Bandung kalah dari Barito Putera pada Senin malam. "
        "Barito Putera seolah mendapat kekuatan kembali di babak kedua."
    )


def test_strip_furniture_marker_spellings_on_their_own_lines():
    body = (
        "Banjir merendam rumah warga.\n"
        "Baca Juga : Warga Mengungsi ke Masjid\n"
        "BACA JUGA: Pompa Air Dikerahkan\n"
        "BACA JUGA Posko Pengungsian Dibuka\n"
        "Petugas membagikan makanan."
    )
    assert strip_furniture(body) == "Banjir merendam rumah warga.\nPetugas membagikan makanan."


def test_strip_furniture_credits_prompts_and_footers():
    body = (
        "Gempa mengguncang Cianjur. Editor : Sri Lestari. Penulis: Andi. "
        "Artikel Terkait: Gempa Susulan Terjadi. Berita Terkini. Warga tetap waspada. "
        "Simak berita lainnya di laman kami. Sumber : BMKG. Ikuti kami di Google News. "
        "(Penulis Singgih | Editor Diamanty) Laporan berakhir.\n"
        "Copyright © 2023 Portal Berita. All rights reserved."
    )
    footer = "Warga tetap waspada. Hak Cipta Dilindungi Undang-Undang. Dilarang mengutip."
    assert strip_furniture(body) == "Gempa mengguncang Cianjur. Warga tetap waspada. Laporan berakhir."
    assert strip_furniture(footer) == "Warga tetap waspada."


def test_strip_furniture_html_and_syndication_footer():
    body = (
        "<p>Presiden &amp;amp; Wakil Presiden hadir.</p><script>var x = 1;</script>"
        "<p>Acara berlangsung meriah.</p> Artikel ini telah tayang di TribunJabar.id dengan judul Acara Meriah."
    )
    assert strip_furniture(body) == "Presiden & Wakil Presiden hadir. Acara berlangsung meriah."


def test_strip_furniture_byline_and_credit():
    body = (
        "Laporan Wartawan Tribunnews.com, Lita Febrian TRIBUNNEWS.COM, JAKARTA - Pameran otomotif dibuka. "
        "Pengunjung ramai (Tribunnews.com/Lita)."
    )
    assert strip_furniture(body) == "JAKARTA - Pameran otomotif dibuka. Pengunjung ramai ."


def test_strip_furniture_leaves_plain_prose_alone():
    prose = (
        "Sumber air bersih berkurang. Warga baca juga buku di perpustakaan.\nEditor senior hadir. "
        "Sengketa hak cipta lagu berlanjut. Copyright lagu itu milik label."
    )
    assert strip_furniture(prose) == prose
    assert strip_furniture("") == ""
    assert strip_furniture(strip_furniture(KOMPAS_BODY)) == strip_furniture(KOMPAS_BODY)


# --- extract_editor_links -------------------------------------------------------------------


def test_extract_editor_links_in_order():
    body = (
        "Persib kalah. Baca juga: Luis Milla Kecewa Persib Gagal Menang. Pertandingan berjalan keras. "
        "Baca juga: Klasemen Liga 1: PSM Makassar Menjauh dari Persib\nPelatih memberi komentar."
    )
    assert extract_editor_links(body) == [
        "Luis Milla Kecewa Persib Gagal Menang",
        "Klasemen Liga 1: PSM Makassar Menjauh dari Persib",
    ]


def test_extract_editor_links_layouts():
    # Tribun: title split by full stops, kept whole
    assert extract_editor_links(TRIBUN_BODY) == [
        "Fakta Menarik Kekalahan Persi. PSM Butuh 5 Laga Buat Juara Liga . Teja Bikin Maung Meran"
    ]
    # Kompas: no delimiter, the capitalised first word of the next sentence comes along
    (link,) = extract_editor_links(KOMPAS_BODY)
    assert link.startswith("Bulog Gelar Operasi Pasar di Jakarta Timur")
    assert link == "Bulog Gelar Operasi Pasar di Jakarta Timur Menurut"


def test_extract_editor_links_none():
    assert extract_editor_links("Tidak ada tautan di sini. Baca juga: tanpa judul.") == []
    assert extract_editor_links("") == []
