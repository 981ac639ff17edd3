"""Realistic synthetic sample data: articles, reader events, explicit preferences and the truth.

Real click logs cannot be shipped with the code, yet every model, the evaluation and the demo
need data whose structure is known. This module simulates an Indonesian news portal:

* **Articles** in Indonesian, written from per-category vocabularies and sentence templates,
  grouped into *developing stories* (1-8 articles over hours to a few days) that share invented
  names of people, places, clubs and companies, so text similarity can find a story.
* **Readers** with hidden preferences over categories (most have one strong favourite), a home
  region and a taste for following stories they clicked. They browse in sessions (power-law
  activity, daytime peaks in WIB); each session shows ~10 recent articles (recency x popularity,
  some stories go viral) and the reader clicks, reads (log-normal dwell) and sometimes shares.
* **Truth**: the story of every article and the hidden preferences of every reader, so tests
  and evaluations can check that models recover them.

Only numpy and the standard library are used, and all randomness comes from one
``np.random.default_rng(seed)``: the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from recommender.domain import CATEGORIES, EVENT_TYPES, WIB

__all__ = [
    "DEFAULT_END",
    "REGIONS",
    "REGION_NAMES",
    "SampleData",
    "generate",
    "slugify",
]

log = logging.getLogger(__name__)

DEFAULT_END = datetime(2026, 11, 1, tzinfo=WIB)
"""Default end of the simulated window; fixed so that a seed alone fixes the output."""

REGIONS = (
    "Jakarta",
    "Jabar",
    "Jateng",
    "Jatim",
    "Sumut",
    "Sulsel",
    "Bali",
    "Banten",
    "Yogyakarta",
    "Kalbar",
    "Papua",
    "Aceh",
)
"""Regional editions of the portal (the ``region`` field of articles and preferences)."""

REGION_NAMES = MappingProxyType(
    {
        "Jakarta": "DKI Jakarta",
        "Jabar": "Jawa Barat",
        "Jateng": "Jawa Tengah",
        "Jatim": "Jawa Timur",
        "Sumut": "Sumatera Utara",
        "Sulsel": "Sulawesi Selatan",
        "Bali": "Bali",
        "Banten": "Banten",
        "Yogyakarta": "DI Yogyakarta",
        "Kalbar": "Kalimantan Barat",
        "Papua": "Papua",
        "Aceh": "Aceh",
    }
)
"""Province names used in article text for each regional edition."""

# ----------------------------------------------------------------------------------------------
# Simulation constants. Tuned so that the default sample has a click-through rate of ~15 %,
# most readers click mostly their favourite category, and the files stay small.
# ----------------------------------------------------------------------------------------------

_CATEGORY_SHARE = (0.18, 0.10, 0.14, 0.16, 0.07, 0.12, 0.07, 0.16)  # of stories, CATEGORIES order
_FAVOURITE_SHARE = (0.20, 0.09, 0.12, 0.18, 0.09, 0.14, 0.08, 0.10)  # readers' favourites
_REGION_SHARE = (0.16, 0.18, 0.13, 0.15, 0.07, 0.05, 0.04, 0.06, 0.04, 0.04, 0.04, 0.04)
_REGION_PROB = MappingProxyType(  # chance that a non-Regional story carries a region
    {"Nasional": 0.3, "Internasional": 0.0, "Ekonomi": 0.1, "Olahraga": 0.6,
     "Teknologi": 0.05, "Hiburan": 0.1, "Otomotif": 0.05, "Regional": 1.0}
)
_STORY_SIZE_P = (0.30, 0.22, 0.16, 0.11, 0.08, 0.06, 0.04, 0.03)  # P(1..8 articles)
_STRONG_READERS = 0.85  # share of readers with one strong favourite category
_SESSIONS_PER_DAY = 0.45  # mean sessions per reader and day (before the activity cap)
_MAX_SESSIONS_PER_DAY = 6.0
_WINDOW_HOURS = 72.0  # articles older than this are no longer shown
_HOMEPAGE_SHARE = 0.6  # sessions on the front page; the rest browse a section
_OFF_SECTION = 0.03  # weight of other categories' articles on a section page
_CLICK_BASE = 0.12
_HOME_POP_POWER = 0.7  # front-page weight = recency * popularity ** power
_CLICK_POP_POWER = 0.2
_AFFINITY_FLOOR = 0.3  # click affinity for a category = (floor + (1 - floor) * 8 * weight) ** power
_AFFINITY_POWER = 1.0
_HOUR_WEIGHT = np.array(  # sessions per hour of the day in WIB, 0..23
    [0.25, 0.12, 0.08, 0.08, 0.2, 0.6, 1.3, 1.6, 1.5, 1.1, 1.0, 1.0,
     1.3, 1.2, 1.0, 0.9, 1.0, 1.1, 1.2, 1.5, 1.6, 1.5, 1.1, 0.6]
)
_HOUR_WEIGHT.setflags(write=False)

# ----------------------------------------------------------------------------------------------
# Vocabulary. Names are invented from syllables so every story gets its own distinctive words.
# ----------------------------------------------------------------------------------------------

_FIRST_NAMES = (
    "Andi", "Budi", "Dewi", "Rizky", "Siti", "Agus", "Rina", "Fajar", "Yusuf", "Bayu", "Putri",
    "Hendra", "Wulan", "Dimas", "Gilang", "Nadia", "Arief", "Indra", "Ratna", "Teguh", "Ayu",
    "Bambang", "Citra", "Eko", "Farhan", "Galih", "Hana", "Ilham", "Joko", "Kartika", "Lukman",
    "Maya", "Nanda", "Okta", "Pandu", "Rani", "Salsa", "Taufik", "Umar", "Vina", "Wahyu", "Yoga",
    "Zahra", "Reza", "Tiara", "Fikri", "Laras", "Bagas",
)
_SURNAME_HEADS = (
    "Wira", "Sura", "Hadi", "Kusuma", "Prata", "Jaya", "Mega", "Purna", "Dharma", "Satya", "Adi",
    "Tirta", "Cahya", "Guna", "Santa", "Mulya", "Rangga", "Sekar", "Bima", "Arya",
)
_SURNAME_TAILS = (
    "wan", "dinata", "atmaja", "ningrat", "santo", "putra", "wijaya", "laksana", "nugraha",
    "prawira", "sena", "hadi", "kusuma", "yuda", "pranata", "saputra",
)
_FOREIGN_FIRST = (
    "Marcus", "Elena", "Hiroshi", "Amir", "Sofia", "Liam", "Chen", "Yuki", "Omar", "Anna",
    "Victor", "Ahmad", "Maria", "Kenji", "Lukas", "Irina", "Rafael", "Nadia", "Tomas", "Leila",
)
_FOREIGN_HEADS = ("Vel", "Mar", "Kor", "Dal", "Ros", "Ber", "Han", "Tak", "Sal", "Mor", "Zan", "Pet")
_FOREIGN_TAILS = ("ano", "strom", "ashi", "ovic", "ander", "ez", "elli", "ton", "berg", "uddin", "enko", "ard")
_FOREIGN_PLACE_TAILS = ("grad", "ville", "stad", "pur", "abad", "ria", "heim", "opolis", "kent", "ora")
_PLACE_HEADS = (
    "Karang", "Suka", "Tanjung", "Sido", "Banyu", "Pasir", "Muara", "Rawa", "Ci", "Kali", "Bukit",
    "Teluk", "Sungai", "Gunung", "Lembah", "Batu",
)
_PLACE_TAILS = (
    "sari", "jaya", "mulya", "rejo", "asri", "makmur", "baru", "harjo", "wangi", "indah", "raya",
    "tengah", "mekar", "luhur",
)
_BRAND_WORDS = (
    "Sinar", "Bumi", "Nusa", "Cipta", "Graha", "Kencana", "Mandiri", "Prima", "Artha", "Sentosa",
    "Global", "Samudra", "Mitra", "Persada", "Cakra", "Lestari", "Mahkota", "Pelita", "Dwi",
    "Surya", "Bintang", "Rajawali", "Garuda", "Tunas",
)
_APP_HEADS = ("Kira", "Lapak", "Bayar", "Kirim", "Jasa", "Tani", "Belajar", "Sehat", "Kerja", "Pasar", "Duit", "Ojek")
_APP_TAILS = ("in", "ku", "Pay", "Go", "nesia", "Hub", "Kita", "Mart", "Loka", "Link")
_MODEL_HEADS = ("Ar", "Vel", "Zen", "Kai", "Lu", "Ter", "Nov", "Xe", "Sol", "Ori", "Val", "Ryo")
_MODEL_TAILS = ("vano", "ora", "tra", "ion", "xa", "ria", "tus", "lix", "enza", "aro")
_PHONE_BRANDS = ("Samsung", "Xiaomi", "Oppo", "Vivo", "Infinix", "Realme", "Tecno", "Asus")
_CAR_BRANDS = ("Toyota", "Honda", "Daihatsu", "Suzuki", "Mitsubishi", "Hyundai", "Wuling", "Chery", "Yamaha", "BYD")
_FILM_WORDS = (
    "Senja", "Bayang", "Rindu", "Jejak", "Kabut", "Cahaya", "Pulang", "Suara", "Luka", "Mimpi",
    "Hujan", "Bisikan",
)
_FILM_PREPS = ("di", "dari", "untuk", "di Balik")
_CLUBS = (  # (club, region) — real Liga 1 clubs tied to a regional edition
    ("Persib", "Jabar"), ("Persija", "Jakarta"), ("Arema FC", "Jatim"), ("Persebaya", "Jatim"),
    ("PSM Makassar", "Sulsel"), ("Bali United", "Bali"), ("PSIS Semarang", "Jateng"),
    ("PSS Sleman", "Yogyakarta"), ("Persiraja", "Aceh"), ("PSMS Medan", "Sumut"),
    ("Persipura", "Papua"), ("Dewa United", "Banten"),
)
_COUNTRIES = (
    "Jepang", "Amerika Serikat", "Tiongkok", "Ukraina", "Palestina", "Malaysia", "Singapura",
    "Australia", "India", "Korea Selatan", "Filipina", "Turki", "Brasil", "Jerman", "Mesir", "Thailand",
)
_CITIES = MappingProxyType(
    {
        "Jakarta": ("Jakarta Selatan", "Jakarta Timur", "Jakarta Utara", "Jakarta Barat", "Jakarta Pusat"),
        "Jabar": ("Bandung", "Bekasi", "Bogor", "Depok", "Cirebon", "Tasikmalaya", "Sukabumi"),
        "Jateng": ("Semarang", "Solo", "Magelang", "Tegal", "Purwokerto", "Kudus"),
        "Jatim": ("Surabaya", "Malang", "Sidoarjo", "Kediri", "Jember", "Banyuwangi"),
        "Sumut": ("Medan", "Binjai", "Pematangsiantar", "Deli Serdang"),
        "Sulsel": ("Makassar", "Gowa", "Parepare", "Bone"),
        "Bali": ("Denpasar", "Badung", "Gianyar", "Buleleng"),
        "Banten": ("Serang", "Tangerang", "Cilegon", "Pandeglang"),
        "Yogyakarta": ("Yogyakarta", "Sleman", "Bantul", "Gunungkidul"),
        "Kalbar": ("Pontianak", "Singkawang", "Ketapang", "Sambas"),
        "Papua": ("Jayapura", "Merauke", "Biak", "Timika"),
        "Aceh": ("Banda Aceh", "Lhokseumawe", "Sabang", "Meulaboh"),
    }
)
_REGENCIES = frozenset(  # led by a Bupati (regency), not a Wali Kota
    {"Deli Serdang", "Gowa", "Bone", "Badung", "Gianyar", "Buleleng", "Pandeglang", "Sleman", "Bantul",
     "Gunungkidul", "Ketapang", "Sambas", "Merauke", "Biak", "Timika", "Banyuwangi", "Jember",
     "Sidoarjo", "Kudus", "Meulaboh"}
)
_NATIONAL_CITIES = ("Jakarta", "Jakarta", "Jakarta", "Tangerang", "Surabaya", "Bandung")
_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_MONTHS = (
    "Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
    "Oktober", "November", "Desember",
)

class _Theme(NamedTuple):
    """One kind of story within a category: its keywords, headlines and sentences.

    The first two sentences can open an article (a statement that introduces the names).
    """

    keywords: tuple[str, ...]
    titles: tuple[str, ...]
    sentences: tuple[str, ...]
    orgs: tuple[str, ...] = ()  # the institution {o}, where the category does not invent one


# Slots: {p}/{p2} people ({p_last}/{p2_last} surnames), {o}/{o2} organisations, {pl} an invented
# place, {city}/{reg} real city and province, {k1}..{k3} story keywords ({k1_cap} title case),
# {prod} a product or title, {maker} its brand, {head}/{gov} local government; numbers per article.
_THEMES = MappingProxyType(
    {
        "Nasional": (
            _Theme(
                ("dugaan korupsi", "operasi tangkap tangan", "suap proyek", "pencucian uang", "gratifikasi"),
                (
                    "KPK Periksa {p} terkait {k1_cap} di {pl}",
                    "{p} Ditetapkan Tersangka Kasus {k1_cap} di {pl}",
                    "Geledah Kantor di {pl}, Penyidik Sita Dokumen Kasus {k1_cap}",
                    "{p} Bantah Terlibat {k2_cap}, Siap Buka-bukaan",
                    "Sidang {p} Ditunda, Jaksa Belum Siap Hadirkan Saksi",
                    "Jubir KPK {p2}: Aliran Dana Rp{amount} ke {p} Didalami",
                ),
                (
                    "Komisi Pemberantasan Korupsi (KPK) memeriksa {p} sebagai saksi dalam kasus {k1} yang terjadi di {pl}, {day}.",
                    "{p} tiba di Gedung Merah Putih KPK, Jakarta, sekitar pukul {hour}.00 WIB dengan mengenakan kemeja putih.",
                    "Juru bicara KPK, {p2}, mengatakan pemeriksaan dilakukan untuk mendalami aliran dana senilai Rp{amount}.",
                    "\"Saya menghormati proses hukum dan akan kooperatif memberikan keterangan,\" kata {p_last} kepada wartawan.",
                    "Penyidik telah menggeledah kantor dinas di {pl} dan menyita sejumlah dokumen serta barang bukti elektronik.",
                    "Menurut {p2_last}, penetapan tersangka baru akan dilakukan setelah penyidik mengantongi alat bukti yang cukup.",
                    "Kasus {k2} ini bermula dari laporan masyarakat terkait proyek pembangunan di {pl} senilai Rp{amount}.",
                    "{p} sebelumnya menjabat sebagai pejabat di {pl} selama hampir {n} tahun sebelum dipindahkan ke Jakarta.",
                ),
                ("KPK", "Kejaksaan Agung"),
            ),
            _Theme(
                ("RUU Penyiaran", "revisi UU Pemilu", "RUU Perampasan Aset", "anggaran pendidikan", "sidang etik"),
                (
                    "DPR Kebut Pembahasan {k1_cap}, {p} Minta Publik Dilibatkan",
                    "Fraksi di DPR Terbelah soal {k1_cap}, {p} Angkat Bicara",
                    "{p}: Pengesahan {k1_cap} Tidak Boleh Terburu-buru",
                    "Koalisi Sipil Tolak Draf {k1_cap}, {p2} Sebut Ada Pasal Bermasalah",
                    "Baleg DPR Gelar Rapat Maraton Bahas {k2_cap}",
                    "MK Terima Gugatan Uji Materi {k1_cap} dari {p2}",
                ),
                (
                    "Badan Legislasi DPR tengah membahas {k1} bersama perwakilan pemerintah di Kompleks Parlemen, Senayan, {day}.",
                    "Anggota Komisi III DPR, {p}, meminta agar pembahasan {k1} dilakukan secara terbuka dan tidak terburu-buru.",
                    "\"Kami ingin undang-undang ini benar-benar menjawab kebutuhan masyarakat, bukan kepentingan kelompok tertentu,\" kata {p_last}.",
                    "Sejumlah fraksi menyampaikan catatan kritis terhadap draf {k1} yang diajukan pemerintah.",
                    "Koalisi masyarakat sipil yang diwakili {p2} menilai beberapa pasal dalam draf tersebut berpotensi mengancam kebebasan berekspresi.",
                    "Rapat kerja dijadwalkan berlanjut pekan depan dengan agenda mendengarkan pendapat para pakar hukum.",
                    "Mahkamah Konstitusi sebelumnya telah menerima {n} permohonan uji materi terkait aturan serupa.",
                    "Menurut {p2_last}, partisipasi publik yang bermakna menjadi syarat agar {k2} tidak digugat di kemudian hari.",
                ),
                ("DPR", "Badan Legislasi DPR", "Mahkamah Konstitusi"),
            ),
            _Theme(
                ("program makan bergizi", "subsidi BBM", "bantuan sosial", "Ibu Kota Nusantara", "reshuffle kabinet"),
                (
                    "Presiden Minta Menteri Percepat {k1_cap}, {p} Siap Jalankan",
                    "{p} Tinjau Pelaksanaan {k1_cap} di {pl}",
                    "Anggaran {k1_cap} Rp{amount}, {p} Jamin Tepat Sasaran",
                    "Survei: {pct_int} Persen Publik Puas dengan {k1_cap}",
                    "Isu {k2_cap} Menguat, Istana: {p} Tetap Fokus Bekerja",
                    "Warga {pl} Keluhkan Penyaluran {k1_cap}, {p} Janji Evaluasi",
                ),
                (
                    "Presiden meminta seluruh jajaran kabinet mempercepat pelaksanaan {k1} agar manfaatnya segera dirasakan masyarakat.",
                    "Menteri {p} meninjau langsung pelaksanaan {k1} di {pl} dan berdialog dengan warga setempat.",
                    "\"Kami pastikan anggaran Rp{amount} ini tepat sasaran dan diawasi dengan ketat,\" ujar {p_last} di sela kunjungannya.",
                    "Pemerintah menargetkan {k1} menjangkau {n} juta penerima manfaat hingga akhir tahun.",
                    "Sejumlah warga {pl} mengaku belum menerima manfaat program tersebut karena kendala pendataan.",
                    "Hasil survei terbaru menunjukkan {pct_int} persen responden puas dengan pelaksanaan {k1}.",
                    "Juru bicara Istana, {p2}, membantah kabar {k2} yang ramai diperbincangkan di media sosial.",
                    "Pengamat kebijakan publik menilai evaluasi berkala diperlukan agar program tidak membebani APBN.",
                ),
                ("Istana Kepresidenan", "Kementerian Sosial", "Kementerian Keuangan", "Badan Gizi Nasional"),
            ),
        ),
        "Internasional": (
            _Theme(
                ("gencatan senjata", "sengketa perbatasan", "kudeta militer", "krisis pengungsi", "unjuk rasa besar"),
                (
                    "{o} Serukan Dialog untuk Akhiri {k1_cap} di {pl}",
                    "Situasi {pl} Memanas, {p} Umumkan Status Darurat",
                    "Ribuan Warga {ctry} Turun ke Jalan Tolak Kebijakan {p}",
                    "WNI di {pl} Dipastikan Aman, KBRI Buka Posko",
                    "{p2} Tuding Pihak Asing Picu {k2_cap} di {ctry}",
                    "Perundingan Damai di {pl} Buntu, {o} Turun Tangan",
                ),
                (
                    "Pemerintah {ctry} mengumumkan status darurat di {pl} setelah situasi keamanan memburuk dalam beberapa hari terakhir.",
                    "Presiden {ctry}, {p}, menyatakan pemerintahnya siap membuka dialog dengan semua pihak.",
                    "\"Kami tidak akan mundur dari komitmen untuk melindungi warga sipil,\" kata {p_last} dalam konferensi pers.",
                    "{o} menyerukan semua pihak menahan diri dan meminta akses bantuan kemanusiaan ke {pl} dibuka seluas-luasnya.",
                    "Ribuan demonstran memadati pusat kota {pl} sambil membawa spanduk berisi tuntutan kepada {p_last}.",
                    "Menteri Luar Negeri {ctry}, {p2}, menuding kelompok bersenjata sebagai pemicu {k2} di wilayah tersebut.",
                    "Lembaga kemanusiaan mencatat sedikitnya {n} ribu warga {pl} terpaksa mengungsi ke wilayah yang lebih aman.",
                    "Oposisi di {ctry} menuding {p} mengabaikan aspirasi warga {pl} selama bertahun-tahun.",
                ),
                ("PBB", "ASEAN", "Uni Eropa"),
            ),
            _Theme(
                ("pemilu presiden", "sanksi ekonomi", "perang dagang", "krisis energi", "perubahan iklim"),
                (
                    "{p} Menang Pemilu {ctry}, Janjikan Reformasi",
                    "Pertemuan {o}: {p} Bahas {k1_cap} dengan Pemimpin Dunia",
                    "{ctry} Ancam Jatuhkan {k2_cap}, {p2} Buka Suara",
                    "Hasil Hitung Cepat di {ctry}: {p} Unggul {pct_int} Persen",
                    "{p} Kunjungi Jakarta, Bahas {k1_cap} dan Kerja Sama Dagang",
                ),
                (
                    "Komisi pemilihan umum {ctry} mengumumkan {p} meraih {pct_int} persen suara dalam {k1} yang digelar akhir pekan lalu.",
                    "{p} berjanji melanjutkan reformasi ekonomi dan memperkuat hubungan dengan negara-negara Asia Tenggara.",
                    "\"Hasil ini adalah mandat rakyat untuk perubahan,\" kata {p_last} di hadapan para pendukungnya di {pl}.",
                    "Dalam pertemuan {o}, para pemimpin dunia membahas {k1} dan dampaknya bagi negara berkembang.",
                    "Menteri Luar Negeri {ctry}, {p2}, dijadwalkan bertemu mitranya dari Indonesia di sela pertemuan {o}.",
                    "Sejumlah negara Barat mengancam menjatuhkan {k2} jika pemerintah {ctry} tidak mengubah kebijakannya.",
                    "Harga minyak dunia sempat naik {pct} persen menyusul kabar dari {ctry} tersebut.",
                    "Pengamat menilai kemenangan {p_last} akan mengubah arah kebijakan luar negeri {ctry}.",
                ),
                ("PBB", "G20", "ASEAN", "Uni Eropa"),
            ),
            _Theme(
                ("gempa bumi", "banjir besar", "letusan gunung api", "badai tropis", "kebakaran hutan"),
                (
                    "{k1_cap} Landa {pl}, {ctry}: {n} Orang Tewas",
                    "{k1_cap} Terjang {pl}, Ribuan Warga Mengungsi",
                    "Indonesia Kirim Bantuan Kemanusiaan ke {pl}, {ctry}",
                    "Korban {k1_cap} di {pl} Bertambah, {p} Tetapkan Masa Berkabung",
                    "WNI Terdampak {k1_cap} di {pl}, KBRI Siapkan Evakuasi",
                ),
                (
                    "{k1_cap} melanda {pl}, {ctry}, pada {day} dini hari waktu setempat dan merusak ribuan bangunan.",
                    "Badan penanggulangan bencana setempat menyebut {k1} kali ini sebagai yang terburuk di {pl} dalam {n} tahun terakhir.",
                    "Presiden {ctry}, {p}, menetapkan masa tanggap darurat selama dua pekan dan meminta bantuan internasional.",
                    "\"Prioritas kami sekarang adalah menyelamatkan korban yang masih tertimbun,\" kata {p_last} saat meninjau {pl}.",
                    "Tim penyelamat masih menyisir reruntuhan di {pl} meski terkendala cuaca buruk dan akses jalan yang terputus.",
                    "Pemerintah Indonesia mengirimkan bantuan berupa tenda, obat-obatan, dan tim medis ke {ctry}.",
                    "{o} menyatakan siap menyalurkan bantuan kemanusiaan bagi warga {pl} yang kehilangan tempat tinggal.",
                    "Juru bicara pemerintah {ctry}, {p2}, mengatakan jumlah korban diperkirakan masih akan bertambah.",
                ),
                ("PBB", "WHO", "Palang Merah Internasional"),
            ),
        ),
        "Ekonomi": (
            _Theme(
                ("buyback saham", "rights issue", "penawaran umum perdana", "dividen interim", "aksi korporasi"),
                (
                    "Saham {o} Melonjak {pct} Persen, Investor Buru {tk}",
                    "{o} Bukukan Laba Rp{amount}, Naik {pct} Persen",
                    "OJK Awasi Ketat {k1_cap} {o}",
                    "IHSG Ditutup Menguat, Saham {tk} Jadi Penopang",
                    "{o} Bagikan {k2_cap} Rp{price} per Saham",
                    "Dirut {o} {p}: {k1_cap} Jadi Strategi Tahun Ini",
                ),
                (
                    "Saham {o} dengan kode {tk} ditutup menguat {pct} persen ke level Rp{price} per lembar pada perdagangan {day}.",
                    "Direktur Utama {o}, {p}, mengatakan kinerja perseroan ditopang oleh pertumbuhan permintaan domestik dan efisiensi biaya.",
                    "\"Kami optimistis target pendapatan tahun ini bisa tercapai seiring pulihnya daya beli masyarakat,\" ujar {p_last} di {city}.",
                    "Analis pasar modal {p2} menilai rencana {k1} menjadi faktor yang mendorong minat investor terhadap saham {tk}.",
                    "Otoritas Jasa Keuangan (OJK) menyatakan terus memantau rencana {k1} yang diajukan {o} agar sesuai ketentuan.",
                    "Indeks Harga Saham Gabungan (IHSG) ditutup menguat {pct} persen dengan nilai transaksi mencapai Rp{amount}.",
                    "Dalam laporan keuangan terbaru, {o} membukukan pendapatan Rp{amount} atau tumbuh {pct} persen secara tahunan.",
                    "Menurut {p2_last}, investor asing mencatatkan pembelian bersih pada saham {tk} selama sepekan terakhir.",
                ),
            ),
            _Theme(
                ("suku bunga acuan", "inflasi tahunan", "nilai tukar rupiah", "cadangan devisa", "obligasi negara"),
                (
                    "Rupiah Menguat ke Rp{fx} per Dolar AS, {p2} Ungkap Pemicunya",
                    "BI Pertahankan Suku Bunga {rate} Persen, {p2} Soroti Dampaknya",
                    "Inflasi {month} Tercatat {pct} Persen, {k2_cap} Jadi Sorotan",
                    "{k1_cap} Jadi Perhatian, Ekonom {p2} Prediksi Arah Kebijakan BI",
                    "Bos {o} {p} Nilai {k1_cap} Masih Aman bagi Dunia Usaha",
                ),
                (
                    "Bank Indonesia (BI) memutuskan mempertahankan suku bunga acuan di level {rate} persen untuk menjaga stabilitas rupiah.",
                    "Nilai tukar rupiah di pasar spot bergerak di kisaran Rp{fx} per dolar AS sepanjang perdagangan {day}.",
                    "Badan Pusat Statistik (BPS) mencatat inflasi tahunan sebesar {pct} persen, sedikit lebih tinggi dibandingkan bulan sebelumnya.",
                    "Ekonom {p2} menilai {k1} masih akan dipengaruhi arah kebijakan bank sentral Amerika Serikat.",
                    "\"Stabilitas {k1} menjadi kunci agar dunia usaha berani menambah investasi,\" kata {p2_last}.",
                    "Direktur Utama {o}, {p}, mengatakan perseroan telah menyiapkan lindung nilai untuk mengantisipasi gejolak {k2}.",
                    "Cadangan devisa Indonesia tercatat sebesar {n} miliar dolar AS pada akhir bulan lalu.",
                    "Pelaku pasar kini menanti rilis data {k3} yang dijadwalkan pekan depan.",
                ),
            ),
            _Theme(
                ("harga beras", "harga minyak goreng", "harga gula", "harga telur ayam", "tarif listrik"),
                (
                    "{k1_cap} Naik, Pedagang di {city} Menjerit",
                    "Pemerintah Gelar Operasi Pasar, {k1_cap} Mulai Turun",
                    "{p} Pastikan Stok Aman meski {k1_cap} Melonjak",
                    "{o} Siapkan Dana Rp{amount} untuk Stabilkan Pasokan",
                    "Inflasi Pangan: {k1_cap} Naik {pct} Persen dalam Sepekan",
                ),
                (
                    "{k1_cap} di sejumlah pasar tradisional di {city} naik {pct} persen dalam sepekan terakhir.",
                    "Pemerintah memastikan stok pangan nasional aman meski {k1} terus merangkak naik.",
                    "Direktur Utama {o}, {p}, mengatakan perseroan menambah pasokan ke pasar-pasar di {city} untuk menahan kenaikan harga.",
                    "\"Kami ingin harga kembali normal sebelum akhir bulan,\" ujar {p_last} saat meninjau gudang di {pl}.",
                    "Para pedagang di Pasar {pl} mengeluhkan {k1} yang membuat pembeli mengurangi belanja.",
                    "Kementerian Perdagangan berjanji menggelar operasi pasar untuk menstabilkan harga bahan pokok.",
                    "Pengamat ekonomi {p2} menilai {k2} turut mendorong inflasi pangan bulan ini.",
                    "Pelaku usaha berharap pemerintah menjaga harga bahan pokok agar tidak menggerus margin keuntungan.",
                ),
            ),
        ),
        "Olahraga": (
            _Theme(
                ("derbi panas", "perebutan juara", "zona degradasi", "adu penalti", "hat-trick", "kartu merah"),
                (
                    "{p} Cetak Gol, {o} Tekuk {o2} {n1}-{n2}",
                    "Pelatih {o} {p2} Puji Mental Bertanding {p}",
                    "Suporter {o} Padati Stadion {pl}, Tiket Ludes dalam {n} Menit",
                    "{o} Terancam Sanksi Komdis PSSI usai Ricuh Lawan {o2}",
                    "Klasemen Liga 1: {o} Naik ke Posisi {rank} usai Kalahkan {o2}",
                    "Jelang Laga Kontra {o2}, {o} Matangkan Strategi di {city}",
                    "Drama {k1_cap}, {o} Bungkam {o2} di Stadion {pl}",
                ),
                (
                    "{o} berhasil meraih kemenangan {n1}-{n2} atas {o2} dalam lanjutan Liga 1 yang digelar di Stadion {pl}, {city}, {day} malam.",
                    "{p} menjadi bintang kemenangan {o} atas {o2} lewat gol pada menit ke-{minute} di Stadion {pl}, {city}.",
                    "Gol kemenangan dicetak oleh {p} pada menit ke-{minute} setelah memanfaatkan umpan silang dari sisi kanan.",
                    "Hasil ini membuat {o} mengoleksi {n} poin dan naik ke peringkat {rank} klasemen sementara Liga 1.",
                    "Sementara itu, {o2} harus menelan kekalahan beruntun dan kini terancam turun ke zona degradasi.",
                    "PSSI melalui Komite Disiplin menyatakan akan meninjau insiden {k2} yang terjadi pada babak kedua.",
                    "Statistik mencatat {o} menguasai {pct_int} persen penguasaan bola dan melepaskan {n} tembakan ke arah gawang.",
                    "Kiper {o2} sempat melakukan beberapa penyelamatan gemilang sebelum akhirnya kebobolan lewat sundulan {p_last}.",
                    "Pada laga berikutnya, {o} dijadwalkan bertandang ke markas {o2} dalam partai yang diprediksi berlangsung sengit.",
                ),
            ),
            _Theme(
                ("transfer pemain", "kontrak baru", "cedera lutut", "pemusatan latihan", "jeda internasional", "sanksi Komdis"),
                (
                    "{o} Resmi Perpanjang Kontrak {p} hingga {year}",
                    "{p} Dipanggil Timnas, {p2}: Dia Layak",
                    "Cedera {p} Bikin {o} Ketar-ketir Jelang {k2_cap}",
                    "Kabar Terbaru {k1_cap}: {o} Siapkan {p} sebagai Andalan",
                    "{o2} Kabarnya Tertarik Boyong {p} dari {o}",
                    "Pelatih Timnas Pantau {p}, {o} Beri Lampu Hijau",
                ),
                (
                    "Manajemen {o} resmi mengumumkan {k1} untuk {p} dalam jumpa pers di {city}, {day}.",
                    "{p} menjadi salah satu pemain kunci {o} musim ini dengan torehan {n1} gol dan {minute} penampilan.",
                    "Isu {k1} kembali mencuat setelah manajemen {o} menggelar rapat tertutup bersama para pemain senior.",
                    "Manajer tim {o} memastikan kondisi {p} terus dipantau tim medis setelah mengalami {k3} saat latihan.",
                    "{p} juga disebut masuk radar pelatih Timnas Indonesia untuk pemusatan latihan menjelang jeda internasional.",
                    "Kabar yang beredar menyebut {o2} siap menebus {p} dengan nilai transfer miliaran rupiah.",
                    "\"Saya masih ingin berjuang bersama {o} dan memberikan gelar untuk suporter,\" kata {p_last}.",
                    "Pelatih {o}, {p2}, menegaskan tidak ingin kehilangan pemain inti di tengah persaingan ketat.",
                ),
            ),
        ),
        "Teknologi": (
            _Theme(
                ("pendanaan seri B", "aplikasi super", "dompet digital", "layanan cloud", "PHK karyawan startup"),
                (
                    "Startup {o} Raih Pendanaan Rp{amount} untuk Kembangkan {k2_cap}",
                    "{o} Gandeng {o2} Perluas Layanan {k3_cap} ke {city}",
                    "CEO {o} {p} Bocorkan Rencana Ekspansi ke Asia Tenggara",
                    "{o} Lakukan {k1_cap}, {p} Sebut Demi Efisiensi",
                    "Pengguna {o} Tembus {n} Juta, {p} Incar Profitabilitas",
                ),
                (
                    "{o}, perusahaan rintisan asal {city}, mengumumkan perolehan pendanaan senilai Rp{amount} untuk memperkuat {k1}.",
                    "{o} tengah menjadi sorotan pelaku industri digital setelah mengumumkan rencana {k2} di {city}.",
                    "CEO {o}, {p}, mengatakan dana segar tersebut akan digunakan untuk memperkuat {k2} dan merekrut talenta digital.",
                    "\"Kami ingin layanan ini bisa dinikmati pengguna di seluruh Indonesia, bukan hanya di kota besar,\" kata {p_last}.",
                    "Menurut data internal perusahaan, jumlah pengguna aktif {o} telah menembus {n} juta orang.",
                    "Kerja sama dengan {o2} diharapkan mempercepat adopsi {k3} di kalangan pelaku UMKM.",
                    "Pengamat ekonomi digital {p2} menilai investor kini lebih selektif dan menuntut jalan menuju profitabilitas.",
                    "Aplikasi {o} kini dapat diunduh gratis di Play Store dan App Store dengan ukuran sekitar {n} MB.",
                    "{o} juga berencana membuka kantor baru di {city} untuk melayani pengguna di kawasan timur Indonesia.",
                ),
            ),
            _Theme(
                ("kamera 200 MP", "pengisian cepat 100 W", "chip AI", "jaringan 5G", "layar lipat"),
                (
                    "{prod} Resmi Meluncur di Indonesia, Harganya Rp{price_hp}",
                    "Spesifikasi Lengkap {prod}: Layar {screen} Inci dan Baterai {battery} mAh",
                    "Uji Coba {prod}: Kamera Tajam, Performa Kencang",
                    "{maker} Siapkan {prod}, Andalkan {k2_cap}",
                    "Bocoran {prod} Beredar, {p} Beri Kode Tanggal Rilis",
                ),
                (
                    "{maker} resmi meluncurkan {prod} di Indonesia dalam acara yang digelar di {city}, {day}.",
                    "{prod} dibekali layar {screen} inci, baterai {battery} mAh, dan fitur {k3}.",
                    "Ponsel {prod} dijual dengan harga mulai Rp{price_hp} dan tersedia di toko daring maupun gerai resmi.",
                    "Country Manager {maker} Indonesia, {p}, mengatakan {prod} menyasar anak muda yang gemar membuat konten.",
                    "\"Fitur {k2} menjadi keunggulan utama yang kami tawarkan di kelas ini,\" kata {p_last}.",
                    "Dalam pengujian singkat, {prod} mampu menjalankan gim berat tanpa kendala berarti.",
                    "Pengamat gawai {p2} menilai harga {prod} cukup agresif untuk bersaing di segmen menengah.",
                    "Pemesanan awal {prod} dibuka mulai pekan ini dengan bonus pembelian bagi {n} ribu pembeli pertama.",
                ),
            ),
            _Theme(
                ("kebocoran data", "serangan ransomware", "keamanan siber", "kecerdasan buatan", "pembaruan perangkat lunak"),
                (
                    "Komdigi Panggil {o} terkait Dugaan {k1_cap}",
                    "Pengguna {o} Keluhkan Gangguan, {p} Beri Penjelasan",
                    "{n} Juta Data Pengguna {o} Diduga Bocor, {p2} Beri Peringatan",
                    "{o} Terapkan {k3_cap} untuk Cegah {k2_cap}",
                    "Pakar {p2}: Ini Cara Aman Setelah {k1_cap} di {o}",
                ),
                (
                    "Kementerian Komunikasi dan Digital meminta {o} segera melaporkan insiden {k1} yang dikeluhkan sejumlah pengguna.",
                    "Sebanyak {n} juta data pengguna {o} diduga diperjualbelikan di sebuah forum peretas sejak {day}.",
                    "CEO {o}, {p}, mengatakan tim internal masih melakukan investigasi bersama Badan Siber dan Sandi Negara.",
                    "\"Kami memastikan data keuangan pengguna tetap aman dan tidak terdampak,\" kata {p_last}.",
                    "Pakar keamanan siber {p2} menyarankan pengguna {o} segera mengganti kata sandi dan mengaktifkan verifikasi dua langkah.",
                    "Menurut {p2_last}, insiden {k2} kerap berawal dari celah pada sistem yang jarang diperbarui.",
                    "{o} berjanji memperkuat sistem dengan {k3} dan audit keamanan secara berkala.",
                    "Sejumlah pengguna mengaku menerima pesan mencurigakan yang mengatasnamakan {o}.",
                ),
            ),
        ),
        "Hiburan": (
            _Theme(
                ("film horor", "box office", "film biopik", "web series", "gala premiere"),
                (
                    "Film {prod} Tembus {n} Ribu Penonton dalam Sepekan",
                    "{p} dan {p2} Kompak Hadiri Gala Premiere {prod}",
                    "Sinopsis {prod}, Dibintangi {p} dan {p2}",
                    "{o} Siapkan Sekuel {prod} Tahun Depan",
                    "Syuting {prod} di {pl}, {p} Ungkap Momen Tak Terlupakan",
                ),
                (
                    "Film {prod} garapan sutradara {p2} berhasil menarik {n} ribu penonton hanya dalam pekan pertama penayangan.",
                    "Rumah produksi {o} menyebut {prod} digarap selama hampir dua tahun dengan lokasi syuting di {pl}.",
                    "Kisah {prod} berpusat pada perjalanan seorang perempuan muda yang kembali ke kampung halamannya di {pl}.",
                    "Pemeran utama {p} mengaku harus menurunkan berat badan demi memerankan tokoh utama dalam {k1} tersebut.",
                    "\"Saya sangat bersyukur atas antusiasme penonton. Ini kerja keras seluruh tim,\" ujar {p_last} saat ditemui di lokasi.",
                    "{p2} mengungkapkan bahwa proses casting {prod} berlangsung ketat dan melibatkan ratusan peserta.",
                    "Sejumlah bioskop di {city} bahkan menambah jam tayang karena tingginya permintaan penonton.",
                    "Kesuksesan {prod} disebut menambah daftar {k2} Indonesia yang laris di pasaran.",
                ),
            ),
            _Theme(
                ("konser tunggal", "album baru", "lagu viral", "tur nasional", "penghargaan musik"),
                (
                    "Tiket Konser {p} di {city} Ludes dalam Hitungan Menit",
                    "{p} Rilis Album {prod}, Gandeng {p2}",
                    "Lagu Baru {p} Trending di YouTube, {p2} Beri Pujian",
                    "{p} Umumkan {k1_cap}, Penggemar Histeris",
                    "{p} Borong Trofi di Ajang {k3_cap}",
                ),
                (
                    "Penyanyi {p} resmi merilis album bertajuk {prod} yang berisi {n1} lagu baru.",
                    "Tiket {k1} {p} di {city} dilaporkan habis terjual dalam waktu kurang dari {minute} menit.",
                    "Penampilan {p} di atas panggung membuat ribuan penggemar ikut bernyanyi sepanjang acara.",
                    "Lagu andalan {p} telah diputar lebih dari {n} juta kali di platform streaming musik.",
                    "\"Album ini adalah cerita paling jujur yang pernah saya tulis,\" ujar {p_last} dalam sesi jumpa pers.",
                    "Kolaborasi {p} dengan {p2} disebut sebagai salah satu yang paling ditunggu tahun ini.",
                    "Rencananya, {p} akan menggelar {k2} di sejumlah kota, termasuk {city}, mulai bulan depan.",
                    "Label {o} menyebut penjualan album fisik {prod} melampaui target dalam sepekan.",
                ),
            ),
            _Theme(
                ("gosip perceraian", "pernikahan artis", "kabar kehamilan", "perseteruan di media sosial", "laporan polisi"),
                (
                    "{p} Akhirnya Buka Suara soal Kabar {k1_cap}",
                    "{p} dan {p2} Resmi Menikah di {pl}",
                    "Unggahan {p} Bikin Heboh, Warganet Singgung {k1_cap}",
                    "Kuasa Hukum {p} Tanggapi {k2_cap} dari {p2}",
                    "{p} Bantah Kabar {k1_cap}: Kami Baik-baik Saja",
                ),
                (
                    "Artis {p} kembali menjadi sorotan setelah kabar {k1} ramai diperbincangkan di media sosial sejak {day}.",
                    "Kabar {k1} yang menyeret nama {p} terus menjadi perbincangan warganet hingga {day}.",
                    "Melalui unggahan di akun Instagram pribadinya, {p_last} meminta publik tidak berspekulasi.",
                    "\"Saya mohon doanya, biarkan kami menyelesaikan urusan keluarga dengan kepala dingin,\" tulis {p_last}.",
                    "Manajemen {p} meminta penggemar untuk tidak mudah percaya pada kabar {k1} yang beredar di dunia maya.",
                    "Kuasa hukum {p}, {p2}, membenarkan kliennya telah menerima surat terkait {k2}.",
                    "Kabar tersebut langsung menjadi trending topic di media sosial tak lama setelah beredar.",
                    "Sejumlah rekan sesama selebritas memberikan dukungan kepada {p_last} melalui kolom komentar.",
                    "Acara yang digelar di {pl} itu dihadiri keluarga dan sejumlah kerabat dekat dari dunia hiburan.",
                ),
            ),
        ),
        "Otomotif": (
            _Theme(
                ("mobil listrik", "SUV tujuh penumpang", "mobil hybrid", "motor matik", "pameran GIIAS"),
                (
                    "{prod} Resmi Dijual, Harga Mulai Rp{price_car} Juta",
                    "Test Drive {prod}: Irit dan Nyaman untuk Mudik",
                    "Spesifikasi {prod}, Pesaing Baru di Segmen {k1_cap}",
                    "{o} Pamerkan {prod} di {k3_cap}, {p} Targetkan {n} Ribu Unit",
                    "Komunitas Pengguna {prod} Gelar Touring ke {pl}",
                ),
                (
                    "{o} resmi meluncurkan {prod} di Indonesia dengan harga mulai Rp{price_car} juta on the road Jakarta.",
                    "Presiden Direktur {o} Indonesia, {p}, mengatakan {prod} dirancang khusus untuk kebutuhan keluarga Indonesia.",
                    "\"Kami melihat permintaan {k1} terus tumbuh, terutama di kota-kota besar,\" kata {p_last} dalam peluncuran di {city}.",
                    "{prod} dibekali mesin {cc} cc yang diklaim mampu menempuh {kml} kilometer per liter.",
                    "Pengamat otomotif {p2} menilai harga {prod} cukup kompetitif di segmen {k1}.",
                    "Dalam pengujian di jalur {pl}, {prod} menunjukkan suspensi yang empuk dan kabin yang senyap.",
                    "Konsumen dapat memesan {prod} melalui diler resmi maupun aplikasi milik {o}.",
                    "{o} menawarkan garansi baterai hingga delapan tahun untuk meyakinkan konsumen {prod}.",
                ),
            ),
            _Theme(
                ("recall", "uji tabrak", "servis berkala", "konsumsi BBM", "stasiun pengisian"),
                (
                    "{o} Recall {n} Ribu Unit {prod}, Ini Penyebabnya",
                    "Hasil {k2_cap} {prod} Diumumkan, {p} Klaim Aman",
                    "Pemilik {prod} Diminta ke Bengkel, {o} Tanggung Biaya",
                    "{o} Tambah Bengkel Resmi untuk Pemilik {prod}",
                    "Keluhan Pemilik {prod} Menumpuk, {p2} Minta {o} Bertanggung Jawab",
                ),
                (
                    "{o} mengumumkan kampanye {k1} terhadap {n} ribu unit {prod} yang diproduksi sejak tahun lalu.",
                    "Pemilik {prod} diminta segera mendatangi bengkel resmi {o} terkait kampanye {k1} yang diumumkan {day}.",
                    "Kampanye tersebut dilakukan untuk memeriksa komponen pompa bahan bakar pada sejumlah unit {prod}.",
                    "Presiden Direktur {o} Indonesia, {p}, memastikan seluruh penggantian komponen tidak dipungut biaya.",
                    "\"Keselamatan konsumen adalah prioritas utama kami,\" kata {p_last} di {city}.",
                    "Pemilik {prod} dapat mengecek nomor rangka kendaraannya melalui situs resmi {o}.",
                    "Ketua komunitas pemilik {prod}, {p2}, mengapresiasi langkah cepat pabrikan meski sempat banyak keluhan.",
                    "Pabrikan juga menambah jaringan bengkel resmi di sejumlah kota, termasuk {city}.",
                    "Menurut {p2_last}, hasil {k2} menjadi pertimbangan penting bagi konsumen sebelum membeli.",
                ),
            ),
            _Theme(
                ("insentif PPnBM", "penjualan mobil", "harga bekas", "kendaraan niaga", "kredit kendaraan"),
                (
                    "Penjualan {prod} Tembus {n} Ribu Unit, {p} Optimistis",
                    "Insentif Pajak Bikin Harga {prod} Lebih Murah",
                    "{p}: {o} Siap Produksi {prod} di {city}",
                    "Gaikindo: {k2_cap} Naik {pct} Persen, {prod} Terlaris",
                    "Harga {prod} Bekas Anjlok, {p2} Ungkap Penyebabnya",
                ),
                (
                    "Gabungan Industri Kendaraan Bermotor Indonesia (Gaikindo) mencatat {k2} naik {pct} persen secara bulanan.",
                    "{prod} menjadi model terlaris {o} dengan penjualan mencapai {n} ribu unit sejak awal tahun.",
                    "Presiden Direktur {o} Indonesia, {p}, mengatakan {k1} sangat membantu menjaga daya beli konsumen.",
                    "\"Kami akan menambah kapasitas produksi {prod} di pabrik {city},\" kata {p_last}.",
                    "Pemerintah berencana memperpanjang {k1} untuk mendorong produksi kendaraan dalam negeri.",
                    "Pengamat otomotif {p2} menilai pasar {k3} masih tertekan oleh suku bunga yang tinggi.",
                    "Di pasar mobil bekas, harga {prod} dilaporkan turun hingga Rp{n} juta dibandingkan tahun lalu.",
                    "Perusahaan pembiayaan di {city} mencatat permohonan {k3} meningkat menjelang akhir tahun.",
                ),
            ),
        ),
        "Regional": (
            _Theme(
                ("banjir bandang", "tanah longsor", "kebakaran pasar", "angin puting beliung", "gelombang tinggi"),
                (
                    "{k1_cap} Rendam {n} Rumah di {pl}, {city}",
                    "{k1_cap} Landa {pl}, BPBD {city} Kerahkan Bantuan",
                    "{head} {city} {p} Tinjau Lokasi {k1_cap} di {pl}",
                    "Korban {k1_cap} di {pl} Mengungsi, {gov} {city} Buka Dapur Umum",
                    "Pascabencana di {pl}, {p} Janji Bangun Ulang Rumah Warga",
                ),
                (
                    "Ratusan rumah warga di Kelurahan {pl}, {city}, {reg}, terdampak {k1} sejak {day} dini hari.",
                    "Kepala BPBD {city} mengatakan tim gabungan telah dikerahkan untuk mengevakuasi warga {pl}.",
                    "{head} {city}, {p}, meninjau langsung lokasi dan memastikan kebutuhan logistik warga tercukupi.",
                    "\"Kami akan segera memperbaiki infrastruktur yang rusak agar aktivitas warga kembali normal,\" kata {p_last}.",
                    "Salah seorang warga, {p2}, mengaku air naik dengan cepat sehingga ia tidak sempat menyelamatkan barang berharga.",
                    "Sebanyak {n} kepala keluarga kini mengungsi di balai desa dan masjid terdekat.",
                    "Polres {city} mengimbau masyarakat tetap waspada karena cuaca ekstrem diperkirakan berlangsung hingga akhir pekan.",
                    "Warga {pl} bergotong royong membersihkan sisa material yang terbawa arus.",
                ),
            ),
            _Theme(
                ("jalan rusak", "pembangunan jembatan", "kemacetan", "krisis air bersih", "revitalisasi pasar"),
                (
                    "Warga {pl} Keluhkan {k1_cap}, {gov} {city} Janji Bertindak",
                    "Jembatan Penghubung {pl} Rampung, {p} Minta Warga Merawat",
                    "Pemprov {reg} Alokasikan Rp{amount} untuk {k2_cap}",
                    "{p} Janjikan Solusi {k1_cap} bagi Warga {pl}",
                    "Proyek {k2_cap} di {pl} Molor, DPRD {city} Panggil Kontraktor",
                ),
                (
                    "Warga Kelurahan {pl}, {city}, mengeluhkan {k1} yang tak kunjung ditangani selama bertahun-tahun.",
                    "{head} {city}, {p}, memastikan penanganan {k1} di Kelurahan {pl} menjadi prioritas tahun ini.",
                    "Salah seorang warga, {p2}, mengatakan kondisi tersebut sering menyebabkan kecelakaan pengendara sepeda motor.",
                    "{head} {city}, {p}, berjanji perbaikan akan dimulai bulan depan setelah anggaran disetujui DPRD.",
                    "\"Kami sudah menganggarkan Rp{amount} dan pekerjaan ditargetkan rampung sebelum akhir tahun,\" kata {p_last}.",
                    "Pemerintah Provinsi {reg} mengalokasikan anggaran untuk {k2} di {n} titik prioritas.",
                    "Dinas Pekerjaan Umum {city} menargetkan pekerjaan di kawasan {pl} rampung dalam dua bulan.",
                    "Menurut {p2_last}, persoalan {k1} di {pl} sudah dilaporkan ke DPRD {city} sejak tahun lalu.",
                    "Anggota DPRD {city} meminta {gov} mengawasi ketat kualitas pekerjaan kontraktor.",
                ),
            ),
            _Theme(
                ("harga cabai", "penertiban PKL", "operasi pasar", "UMKM lokal", "kelangkaan elpiji"),
                (
                    "Harga Cabai di Pasar {pl} {city} Tembus Rp{n} Ribu per Kg",
                    "{gov} {city} Gelar {k3_cap} di {pl}, Warga Antre Sejak Pagi",
                    "Pedagang Pasar {pl} Protes {k2_cap}, {p} Turun Tangan",
                    "{k1_cap} Bikin Warga {city} Resah, {p} Minta Distributor Diawasi",
                    "Pelaku {k1_cap} di {pl} Dapat Bantuan Modal dari {gov} {city}",
                ),
                (
                    "Warga {city} mengeluhkan {k1} yang terjadi dalam sepekan terakhir, terutama di sekitar Pasar {pl}.",
                    "Di Pasar {pl}, {city}, harga cabai rawit merah dilaporkan naik menjadi Rp{n} ribu per kilogram.",
                    "Para pedagang di {pl} berharap pemerintah daerah segera turun tangan agar harga kebutuhan pokok kembali stabil.",
                    "{head} {city}, {p}, memastikan stok bahan pokok di wilayahnya aman hingga akhir tahun.",
                    "\"Kami sudah berkoordinasi dengan distributor agar pasokan tidak tersendat,\" kata {p_last} di {pl}.",
                    "Salah seorang pedagang, {p2}, mengaku omzetnya turun hampir separuh sejak {k1} terjadi.",
                    "{gov} {city} menggelar {k3} di {n} titik untuk membantu warga berpenghasilan rendah.",
                    "Satpol PP {city} melakukan {k2} di sekitar Pasar {pl} yang dinilai mengganggu arus lalu lintas.",
                    "Dinas Perdagangan {reg} mencatat inflasi daerah dipicu kenaikan harga pangan.",
                ),
            ),
            _Theme(
                ("festival budaya", "wisata alam", "kirab budaya", "lomba perahu tradisional", "pesta rakyat"),
                (
                    "{k1_cap} {pl} Kembali Digelar, {p} Ajak Wisatawan Datang",
                    "Ribuan Wisatawan Padati {k1_cap} di {pl}, {city}",
                    "{gov} {city} Siapkan {k2_cap} untuk Dongkrak Kunjungan Wisata",
                    "Pesona {pl}, Destinasi {k2_cap} Baru di {reg}",
                    "{p}: {k1_cap} {pl} Masuk Kalender Pariwisata Nasional",
                ),
                (
                    "{k1_cap} di {pl}, {city}, kembali digelar dan menarik ribuan pengunjung dari berbagai daerah di {reg}.",
                    "Ribuan warga dan wisatawan memadati kawasan {pl}, {city}, untuk menyaksikan {k1} yang digelar {day}.",
                    "Acara tersebut menampilkan tarian tradisional, kuliner khas, dan pameran kerajinan warga {pl}.",
                    "{head} {city}, {p}, mengatakan kegiatan ini menjadi upaya menghidupkan kembali ekonomi warga.",
                    "\"Kami ingin {pl} dikenal sebagai destinasi {k2} unggulan di {reg},\" ujar {p_last}.",
                    "Ketua panitia, {p2}, menyebut jumlah pengunjung tahun ini naik dibandingkan tahun lalu.",
                    "Para pelaku UMKM di {pl} mengaku dagangan mereka laris selama {n1} hari penyelenggaraan.",
                    "Dinas Pariwisata {reg} menargetkan kunjungan wisatawan meningkat {pct} persen hingga akhir tahun.",
                    "Pengunjung diimbau menggunakan transportasi umum karena area parkir di sekitar {pl} terbatas.",
                ),
            ),
        ),
    }
)

_SHARED_SENTENCES = MappingProxyType(  # fit every story of a category
    {
        "Nasional": (
            "Pengamat politik {p2_last} menilai kasus ini menjadi ujian bagi komitmen pemerintah di tingkat nasional.",
            "Hingga kini, {o} belum mengeluarkan pernyataan resmi terkait perkembangan terbaru tersebut.",
            "Isu {k1} menjadi salah satu topik yang paling banyak diperbincangkan warganet pekan ini.",
        ),
        "Internasional": (
            "Kementerian Luar Negeri RI memastikan sekitar {n} WNI yang tinggal di {pl} dalam kondisi aman.",
            "KBRI telah membuka posko pengaduan dan menyiapkan rencana evakuasi jika situasi di {pl} memburuk.",
            "Analis hubungan internasional menilai perkembangan di {ctry} berpotensi memengaruhi stabilitas kawasan.",
        ),
        "Ekonomi": (
            "Sejumlah ekonom memperkirakan isu {k3} masih akan membayangi pergerakan pasar hingga akhir tahun.",
            "Menurut {p2_last}, ketidakpastian global masih menjadi tantangan utama bagi perekonomian nasional.",
            "Perseroan menegaskan komitmennya untuk menjaga tata kelola perusahaan yang baik di tengah sorotan publik.",
        ),
        "Olahraga": (
            "Pelatih {o}, {p2}, mengaku puas dengan perkembangan anak asuhnya meski masih ada yang perlu dibenahi.",
            "\"Kami bermain disiplin dan mengikuti instruksi. {p_last} menunjukkan kualitasnya,\" kata {p2_last}.",
            "Ribuan suporter {o} memenuhi Stadion {pl} dan terus bernyanyi memberikan dukungan.",
            "Sejumlah pengamat menilai strategi yang diterapkan {p2_last} mulai membuahkan hasil positif.",
        ),
        "Teknologi": (
            "Pengamat teknologi {p2_last} menilai persaingan di segmen {k1} semakin ketat seiring masuknya pemain baru.",
            "Pemerintah mendorong perusahaan teknologi untuk mematuhi aturan pelindungan data pribadi.",
            "Perkembangan {k2} di Indonesia dinilai masih tertinggal dibandingkan negara tetangga.",
        ),
        "Hiburan": (
            "Sejumlah selebritas tampak hadir dalam acara tersebut, termasuk rekan sesama musisi dan aktor senior.",
            "Nama {p} langsung menjadi trending topic di media sosial tak lama setelah kabar itu beredar.",
            "Penggemar {p_last} berharap sang idola terus berkarya dan menjaga kesehatannya.",
        ),
        "Otomotif": (
            "Pemerintah terus mendorong penggunaan kendaraan rendah emisi melalui berbagai insentif.",
            "Menurut {p2_last}, tren {k1} akan semakin kuat seiring bertambahnya infrastruktur pendukung.",
            "Konsumen di {city} disebut mulai mempertimbangkan biaya perawatan sebelum membeli kendaraan baru.",
        ),
        "Regional": (
            "Polres {city} mengimbau masyarakat untuk mengikuti informasi resmi dari pemerintah daerah.",
            "Warga berharap perhatian {gov} {city} tidak berhenti setelah persoalan ini ramai diberitakan.",
            "Informasi lengkap seputar {reg} dapat diikuti di kanal iNews Regional.",
        ),
    }
)

_FOLLOW_UP_TITLES = (  # for long stories, once the theme's own headlines are used up
    "Babak Baru {k1_cap}, {p} Angkat Bicara",
    "Perkembangan Terbaru {k1_cap}: {o} Beri Penjelasan",
    "Sorotan Publik Menguat, {p_last} Tanggapi Isu {k2_cap}",
    "Kronologi Lengkap {k1_cap} yang Melibatkan {p}",
    "Fakta-fakta {k1_cap} di {pl}, Nomor {n1} Bikin Kaget",
    "{p} Buka Suara soal {k2_cap}",
)

_GENERIC_SENTENCES = (
    "Hingga berita ini diturunkan, pihak {o} belum memberikan keterangan resmi terkait hal tersebut.",
    "Perkembangan terkait {k1} akan terus dipantau dalam beberapa hari ke depan.",
    "Informasi yang dihimpun iNews.id menyebutkan, {p} telah dimintai tanggapan oleh sejumlah wartawan.",
    "Kabar ini menjadi perbincangan hangat di media sosial sejak {day} pagi.",
    "Warganet ramai mengomentari kabar tersebut, sebagian besar memberikan dukungan kepada {p_last}.",
    "Sebelumnya, isu mengenai {k2} sempat menjadi sorotan publik pada pekan lalu.",
    "iNews.id akan terus memperbarui informasi seputar {k1} dan {o}.",
    "Sejumlah pihak menilai langkah tersebut sebagai momentum penting bagi {o}.",
    "Untuk diketahui, kabar mengenai {p_last} dan {o} pertama kali mencuat pada awal pekan ini.",
    "Publik kini menantikan langkah lanjutan dari {o} terkait {k1}.",
)

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_len: int = 80) -> str:
    """URL slug: lower-case ASCII words joined by ``-``, cut at a word boundary."""
    slug = _SLUG_RE.sub("-", text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rsplit("-", 1)[0]
    return slug or "artikel"


@dataclass
class SampleData:
    """Generated records, one list of JSON-ready dicts per file.

    Attributes
    ----------
    articles : list of dict
        Article records sorted by ``published_at`` (ids increase with time).
    events : list of dict
        Reader events sorted by ``ts``.
    preferences : list of dict
        Explicit category and region follows of the readers who set any.
    truth : list of dict
        ``kind="article"`` rows (story of each article) then ``kind="user"`` rows (hidden
        preferences of each reader).
    """

    articles: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    preferences: list[dict[str, Any]] = field(default_factory=list)
    truth: list[dict[str, Any]] = field(default_factory=list)

    def write_jsonl(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``<name>.jsonl`` files (one JSON object per line, UTF-8) into ``out_dir``.

        Returns
        -------
        dict
            ``{"articles": path, "events": path, "preferences": path, "truth": path}``.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in ("articles", "events", "preferences", "truth"):
            path = out / f"{name}.jsonl"
            with path.open("w", encoding="utf-8", newline="\n") as fh:
                for record in getattr(self, name):
                    fh.write(json.dumps(record, ensure_ascii=False))
                    fh.write("\n")
            paths[name] = path
        log.info("wrote %d articles, %d events to %s", len(self.articles), len(self.events), out)
        return paths


def generate(
    n_articles: int = 600,
    n_users: int = 300,
    days: float = 7,
    seed: int = 0,
    end: datetime | None = None,
    *,
    sessions_per_day: float = _SESSIONS_PER_DAY,
) -> SampleData:
    """Simulate a news portal: articles grouped into stories, readers and their events.

    Parameters
    ----------
    n_articles : int
        Number of articles, published through the ``days`` before ``end``.
    n_users : int
        Number of readers (some may have no session in the window).
    days : float
        Length of the simulated window.
    seed : int
        Seed of the single random generator; same arguments give identical output.
    end : datetime, optional
        Timezone-aware end of the window (default :data:`DEFAULT_END`). Times are written
        in WIB (UTC+7), the portal's clock.
    sessions_per_day : float
        Mean browsing sessions per reader and day before the activity cap; scales the number
        of events (about 13 events per session).

    Returns
    -------
    SampleData
    """
    if int(n_articles) < 1 or int(n_users) < 1:
        raise ValueError(f"n_articles and n_users must be at least 1; got {n_articles} and {n_users}")
    if not days > 0:
        raise ValueError(f"days must be positive (e.g. days=7); got {days}")
    if not sessions_per_day >= 0:
        raise ValueError(f"sessions_per_day must be >= 0; got {sessions_per_day}")
    end = DEFAULT_END if end is None else end
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("end must be timezone-aware, e.g. datetime(2026, 11, 1, tzinfo=WIB)")
    rng = np.random.default_rng(seed)
    end_s = int(end.timestamp())
    start_s = end_s - int(round(days * 86400))

    art = _make_articles(rng, int(n_articles), start_s, end_s)
    usr = _make_users(rng, int(n_users))
    ev = _simulate_events(rng, art, usr, start_s, end_s, float(sessions_per_day))
    data = SampleData(
        articles=art["records"],
        events=_event_records(ev, art["ids"], usr["ids"]),
        preferences=_preference_records(rng, usr),
        truth=_truth_records(art, usr),
    )
    n_imp = int(np.sum(ev["etype"] == 0))
    n_click = int(np.sum(ev["etype"] == 1))
    log.info(
        "generated %d articles in %d stories, %d users, %d events (CTR %.3f)",
        len(data.articles), art["n_stories"], len(usr["ids"]), len(data.events),
        n_click / max(n_imp, 1),
    )
    return data


# ----------------------------------------------------------------------------------------------
# Articles
# ----------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, seq: tuple | list) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _cap(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))


def _thousands(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def _decimal(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def _person(rng: np.random.Generator, foreign: bool = False) -> tuple[str, str]:
    if foreign:
        last = _pick(rng, _FOREIGN_HEADS) + _pick(rng, _FOREIGN_TAILS)
        return f"{_pick(rng, _FOREIGN_FIRST)} {last}", last
    head, tail = _pick(rng, _SURNAME_HEADS), _pick(rng, _SURNAME_TAILS)
    last = head + (tail if tail != head.lower() else "jaya")
    return f"{_pick(rng, _FIRST_NAMES)} {last}", last


def _invented_place(rng: np.random.Generator, foreign: bool = False) -> str:
    if foreign:
        return _pick(rng, _FOREIGN_HEADS) + _pick(rng, _FOREIGN_PLACE_TAILS)
    return _pick(rng, _PLACE_HEADS) + _pick(rng, _PLACE_TAILS)


def _story_slots(rng: np.random.Generator, category: str, theme: _Theme, region: str | None) -> dict[str, str]:
    """The names and keywords every article of one story shares."""
    foreign = category == "Internasional"
    p, p_last = _person(rng, foreign)
    p2, p2_last = _person(rng, foreign)
    while p2_last == p_last:
        p2, p2_last = _person(rng, foreign)
    kws = rng.choice(len(theme.keywords), size=3, replace=False)
    k1, k2, k3 = (theme.keywords[int(i)] for i in kws)
    city = _pick(rng, _CITIES[region]) if region else _pick(rng, _NATIONAL_CITIES)
    w1, w2 = rng.choice(len(_BRAND_WORDS), size=2, replace=False)
    brand = (_BRAND_WORDS[int(w1)], _BRAND_WORDS[int(w2)])
    model = _pick(rng, _MODEL_HEADS) + _pick(rng, _MODEL_TAILS)
    regency = city in _REGENCIES
    slots = {
        "p": p, "p_last": p_last, "p2": p2, "p2_last": p2_last,
        "k1": k1, "k2": k2, "k3": k3, "k1_cap": _cap(k1), "k2_cap": _cap(k2), "k3_cap": _cap(k3),
        "pl": _invented_place(rng, foreign), "city": city,
        "reg": REGION_NAMES[region] if region else "Indonesia",
        "head": "Bupati" if regency else "Wali Kota", "gov": "Pemkab" if regency else "Pemkot",
        "ctry": _pick(rng, _COUNTRIES), "o": "", "o2": "", "prod": "", "maker": "", "tk": "",
    }
    if category == "Olahraga":
        clubs = [c for c, r in _CLUBS if r == region] if region else [c for c, _ in _CLUBS]
        slots["o"] = _pick(rng, clubs)
        slots["o2"] = _pick(rng, [c for c, _ in _CLUBS if c != slots["o"]])
    elif category == "Ekonomi":
        slots["o"] = f"PT {brand[0]} {brand[1]} Tbk"
        slots["tk"] = (brand[0][:2] + brand[1][:2]).upper()
    elif category == "Teknologi":
        slots["o"] = _pick(rng, _APP_HEADS) + _pick(rng, _APP_TAILS)
        slots["o2"] = f"{brand[0]} {brand[1]} Digital"
        slots["maker"] = _pick(rng, _PHONE_BRANDS)
        slots["prod"] = f"{slots['maker']} {model} {int(rng.integers(5, 16))}"
    elif category == "Hiburan":
        slots["o"] = f"{brand[0]} {'Pictures' if rng.random() < 0.5 else 'Records'}"
        slots["prod"] = f"{_pick(rng, _FILM_WORDS)} {_pick(rng, _FILM_PREPS)} {slots['pl']}"
    elif category == "Otomotif":
        slots["o"] = slots["maker"] = _pick(rng, _CAR_BRANDS)
        slots["prod"] = f"{slots['o']} {model}"
    elif category in ("Nasional", "Internasional"):
        slots["o"] = _pick(rng, theme.orgs)
    else:  # Regional
        slots["o"] = f"{slots['gov']} {city}"
    return slots


def _article_slots(rng: np.random.Generator, story: dict[str, str], ts: int) -> dict[str, str]:
    """Numbers and dates that change from one article of a story to the next."""
    r = rng.random(16)
    local = datetime.fromtimestamp(ts, tz=WIB)
    n1 = int(r[1] * 4) + 1
    slots = dict(story)
    slots.update(
        n=str(int(3 + r[0] * 96)),
        n1=str(n1),
        n2=str(int(r[2] * n1)),  # the story's club wins
        rank=str(int(1 + r[3] * 17)),
        minute=str(int(5 + r[4] * 85)),
        pct=_decimal(0.2 + r[5] * 9),
        pct_int=str(int(35 + r[6] * 45)),
        amount=f"{int(2 + r[7] * 900)} miliar" if r[8] < 0.8 else f"{int(1 + r[7] * 40)} triliun",
        price=_thousands(int(150 + r[9] * 9000)),
        fx=_thousands(int(15_800 + r[10] * 700)),
        rate=_decimal(5.25 + 0.25 * int(r[11] * 5)),
        screen=_decimal(6.1 + r[13] * 0.8, 1),
        battery=_thousands(4000 + 500 * int(r[14] * 4)),
        price_hp=_thousands((1 + int(r[15] * 15)) * 1_000_000 - 1_000),
        price_car=str(int(180 + r[0] * 520)),
        cc=_thousands(1000 + 200 * int(r[1] * 6)),
        kml=str(int(12 + r[2] * 12)),
        hour=f"{int(8 + r[3] * 9):02d}",
        day=_DAYS[local.weekday()],
        month=_MONTHS[(local.month - 2) % 12],
        year=str(local.year + 1 + int(r[4] * 3)),
    )
    return slots


def _write_article(
    rng: np.random.Generator,
    category: str,
    slots: dict[str, str],
    title: str,
    leads: tuple[str, ...],
    sentences: list[str],
) -> tuple[str, str]:
    """Title and body: dateline and lead, then 80-300 words in 2-4 paragraphs."""
    pool = [sentences[int(i)] for i in rng.permutation(len(sentences))]
    pool.insert(0, _pick(rng, leads))
    generic = rng.permutation(len(_GENERIC_SENTENCES))
    n_generic = int(rng.integers(1, 4))
    for j, g in enumerate(generic[:n_generic]):  # generic sentences land somewhere after the lead
        pool.insert(min(len(pool), 2 + 2 * j + int(rng.integers(3))), _GENERIC_SENTENCES[int(g)])
    spare = [_GENERIC_SENTENCES[int(g)] for g in generic[n_generic:]]
    target = int(rng.integers(85, 230))
    place = slots["pl"] if category == "Internasional" else slots["city"]
    chosen: list[str] = []
    words = 2  # the dateline
    for templates, goal in ((pool, target), (spare, 85)):  # boilerplate only if the story ran dry
        for template in templates:
            if words >= goal:
                break
            sentence = template.format_map(slots)
            n = sentence.count(" ") + 1
            if words + n <= 295:
                chosen.append(sentence)
                words += n
    chosen[0] = f"{place.upper()}, iNews.id - {chosen[0]}"
    n_par = min(len(chosen), int(rng.integers(2, 5)))
    cuts = np.linspace(0, len(chosen), n_par + 1).round().astype(int)
    body = "\n\n".join(" ".join(chosen[a:b]) for a, b in zip(cuts[:-1], cuts[1:]) if b > a)
    return title.format_map(slots), body


def _assign_categories(rng: np.random.Generator, sizes: list[int]) -> np.ndarray:
    """Category of each story, drawn so the article mix stays close to ``_CATEGORY_SHARE``.

    A newsroom fills every desk every day; independent draws would let a small sample lose
    half of a category and with it the signal that its fans rely on.
    """
    share = _normalized(_CATEGORY_SHARE)
    counts = np.zeros(len(share))
    out = np.empty(len(sizes), dtype=np.int64)
    for s, size in enumerate(sizes):
        deficit = np.maximum(share * (counts.sum() + size) - counts, 0.0) + 0.02
        out[s] = rng.choice(len(share), p=deficit / deficit.sum())
        counts[out[s]] += size
    return out


def _make_articles(rng: np.random.Generator, n_articles: int, start_s: int, end_s: int) -> dict[str, Any]:
    """Stories first (category, theme, region, names, timing), then articles in publication order."""
    n_cat, n_reg = len(CATEGORIES), len(REGIONS)
    span_s = end_s - start_s
    sizes: list[int] = []
    while sum(sizes) < n_articles:
        sizes.append(int(rng.choice(8, p=_STORY_SIZE_P)) + 1)
    sizes[-1] -= sum(sizes) - n_articles
    n_stories = len(sizes)
    story_cat = _assign_categories(rng, sizes)
    virality = rng.lognormal(0.0, 0.7, size=n_stories)
    viral = rng.random(n_stories) < 0.04
    virality[viral] *= rng.uniform(4.0, 10.0, size=int(viral.sum()))

    pub: list[int] = []
    story_of: list[int] = []
    story_region: list[int] = []
    stories: list[tuple[dict[str, str], list[str], tuple[str, ...], list[str]]] = []
    for s, size in enumerate(sizes):
        category = CATEGORIES[int(story_cat[s])]
        theme = _pick(rng, _THEMES[category])
        region = -1
        if rng.random() < _REGION_PROB[category]:
            if category == "Olahraga":  # the club decides the edition
                region = REGIONS.index(_pick(rng, _CLUBS)[1])
            else:
                region = int(rng.choice(n_reg, p=_normalized(_REGION_SHARE)))
        story_region.append(region)
        slots = _story_slots(rng, category, theme, REGIONS[region] if region >= 0 else None)
        # the story's own headlines (no repeats) and a subset of sentences, so its articles read alike
        titles = [theme.titles[int(i)] for i in rng.permutation(len(theme.titles))]
        titles += [_FOLLOW_UP_TITLES[int(i)] for i in rng.permutation(len(_FOLLOW_UP_TITLES))]
        own = theme.sentences[2:] + _SHARED_SENTENCES[category]
        keep = np.sort(rng.choice(len(own), size=max(7, int(0.85 * len(own))), replace=False))
        stories.append((slots, titles, theme.sentences[:2], [own[int(i)] for i in keep]))
        # a developing story: follow-ups 20 min to ~a day apart, at most ~3 days in total
        gaps = 1200 + rng.exponential(5 * 3600, size=size - 1)
        offsets = np.concatenate([[0.0], np.cumsum(gaps)])
        limit = min(3 * 86400, 0.9 * span_s)
        if offsets[-1] > limit:
            offsets *= limit / offsets[-1]
        first = start_s + rng.uniform(0, max(span_s - offsets[-1] - 600, 1.0))
        times = -(-(first + offsets) // 60) * 60  # CMS times are whole minutes
        pub.extend(int(t) for t in times)
        story_of.extend([s] * size)

    pub_arr = np.asarray(pub, dtype=np.int64)
    story_arr = np.asarray(story_of, dtype=np.int64)
    order = np.lexsort((np.arange(len(pub_arr)), pub_arr))
    pub_arr, story_arr = pub_arr[order], story_arr[order]
    cat_arr = story_cat[story_arr]
    region_arr = np.asarray(story_region, dtype=np.int64)[story_arr]

    seen = np.zeros(n_stories, dtype=np.int64)
    ids = [f"a{i + 1:06d}" for i in range(n_articles)]
    iso = _iso_times(pub_arr)
    records = []
    words = np.empty(n_articles, dtype=np.int64)
    for i in range(n_articles):
        s = int(story_arr[i])
        category = CATEGORIES[int(cat_arr[i])]
        story, titles, leads, sentences = stories[s]
        slots = _article_slots(rng, story, int(pub_arr[i]))
        title, body = _write_article(rng, category, slots, titles[seen[s] % len(titles)], leads, sentences)
        seen[s] += 1
        words[i] = len(body.split())
        region = REGIONS[int(region_arr[i])] if region_arr[i] >= 0 else None
        tags = [story["k1"], story["p"], story["o"], story["prod"]]
        if category == "Olahraga":
            tags.append("Liga 1")
        if region is not None:
            tags.append(REGION_NAMES[region])
        if category == "Internasional":
            tags.append(story["ctry"])
        records.append(
            {
                "article_id": ids[i],
                "title": title,
                "body": body,
                "category": category,
                "region": region,
                "tags": list(dict.fromkeys(t for t in tags if t)),
                "url": f"https://www.inews.id/{slugify(category)}/{slugify(title)}-{ids[i]}",
                "published_at": iso[i],
                "language": "id",
            }
        )
    return {
        "records": records,
        "ids": ids,
        "pub": pub_arr,
        "cat": cat_arr,
        "region": region_arr,
        "story": story_arr,
        "pop": virality[story_arr],
        "words": words,
        "n_stories": n_stories,
    }


# ----------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------


def _normalized(p: tuple[float, ...] | np.ndarray) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    return arr / arr.sum()


def _make_users(rng: np.random.Generator, n_users: int) -> dict[str, Any]:
    """Hidden tastes: category weights (one strong favourite for most), home region, activity."""
    n_cat, n_reg = len(CATEGORIES), len(REGIONS)
    favourite = rng.choice(n_cat, size=n_users, p=_normalized(_FAVOURITE_SHARE))
    strong = rng.random(n_users) < _STRONG_READERS
    alpha = np.where(strong[:, None], 0.8, 1.2) * np.ones((n_users, n_cat))
    alpha[np.arange(n_users), favourite] = np.where(strong, 9.0, 2.0)
    cat_w = rng.gamma(alpha)
    cat_w /= cat_w.sum(axis=1, keepdims=True)
    favourite = cat_w.argmax(axis=1)  # the truth is what the weights say

    home = rng.choice(n_reg, size=n_users, p=_normalized(_REGION_SHARE))
    reg_w = rng.gamma(np.full((n_users, n_reg), 0.5))
    reg_w = 0.4 * reg_w / reg_w.sum(axis=1, keepdims=True)
    reg_w[np.arange(n_users), home] += 0.6

    activity = rng.pareto(1.5, size=n_users) + 1.0  # power law, mean 3
    clickiness = rng.lognormal(0.0, 0.35, size=n_users)
    return {
        "ids": [f"u{i + 1:05d}" for i in range(n_users)],
        "cat_w": cat_w,
        "reg_w": reg_w,
        "home": home,
        "favourite": favourite,
        "activity": activity / 3.0,
        "clickiness": clickiness,
    }


# ----------------------------------------------------------------------------------------------
# Events
# ----------------------------------------------------------------------------------------------


def _session_times(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` session start times in [lo, hi), denser at WIB daytime peaks (rejection sampling)."""
    out = np.empty(0, dtype=np.int64)
    accept = _HOUR_WEIGHT / _HOUR_WEIGHT.max()
    while out.size < n:
        cand = rng.integers(lo, hi, size=2 * (n - out.size) + 16)
        hour = ((cand + 7 * 3600) // 3600) % 24
        out = np.concatenate([out, cand[rng.random(cand.size) < accept[hour]]])
    return out[:n]


def _simulate_events(
    rng: np.random.Generator,
    art: dict[str, Any],
    usr: dict[str, Any],
    start_s: int,
    end_s: int,
    sessions_per_day: float,
) -> dict[str, np.ndarray]:
    """Sessions of impressions, clicks, reads and shares; arrays sorted by time."""
    n_cat, n_reg = len(CATEGORIES), len(REGIONS)
    regional = CATEGORIES.index("Regional")
    pub, cat, region, story, pop = art["pub"], art["cat"], art["region"], art["story"], art["pop"]
    n_art, n_stories = len(pub), art["n_stories"]
    days = (end_s - start_s) / 86400
    rate = np.minimum(sessions_per_day * usr["activity"], _MAX_SESSIONS_PER_DAY)
    n_sessions = rng.poisson(rate * days)
    hi_s = max(start_s + 1, end_s - 2 * 3600)
    times = _session_times(rng, int(n_sessions.sum()), start_s, hi_s)
    bounds = np.concatenate([[0], np.cumsum(n_sessions)])
    pop_click = pop ** _CLICK_POP_POWER
    word_factor = np.sqrt(np.maximum(art["words"], 40) / 170.0)
    window = int(_WINDOW_HOURS * 3600)

    ts_parts: list[np.ndarray] = []
    user_parts: list[np.ndarray] = []
    art_parts: list[np.ndarray] = []
    type_parts: list[np.ndarray] = []
    after: list[tuple[int, int, int, int, float]] = []  # (ts, user, article, type, dwell) past impressions
    for u in range(len(usr["ids"])):
        if n_sessions[u] == 0:
            continue
        cat_w, reg_w = usr["cat_w"][u], usr["reg_w"][u]
        aff_all = (_AFFINITY_FLOOR + (1 - _AFFINITY_FLOOR) * n_cat * cat_w) ** _AFFINITY_POWER  # 1 = indifferent
        reg_all = np.concatenate([0.4 + 0.6 * n_reg * reg_w, [1.0]])  # index -1: no region
        clicked = np.zeros(n_art, dtype=bool)
        followed = np.zeros(n_stories, dtype=bool)
        busy_until = 0  # sessions of one reader do not overlap
        for t in np.sort(times[bounds[u]: bounds[u + 1]]):
            t = max(int(t), busy_until + 60)
            hi = int(np.searchsorted(pub, t, side="left"))
            lo = int(np.searchsorted(pub, t - window, side="left"))
            if hi <= lo:
                continue
            age_h = (t - pub[lo:hi]) / 3600.0
            w = np.exp(-age_h / 10.0) + 0.03 * np.exp(-age_h / 48.0)
            if rng.random() < _HOMEPAGE_SHARE:  # the front page: whatever is big right now
                w *= pop[lo:hi] ** _HOME_POP_POWER
            else:  # a section page chosen by taste; popularity matters less there
                c = int(rng.choice(n_cat, p=cat_w))
                w *= np.sqrt(pop[lo:hi]) * np.where(cat[lo:hi] == c, 1.0, _OFF_SECTION)
                if c == regional:
                    r = int(rng.choice(n_reg, p=reg_w))
                    w *= np.where(region[lo:hi] == r, 1.0, 0.15)
            w = w * (1.0 + 2.0 * followed[story[lo:hi]])
            w[clicked[lo:hi]] = 0.0
            n_pos = int(np.count_nonzero(w))
            if n_pos == 0:
                continue
            k = min(int(rng.integers(8, 13)), n_pos)
            with np.errstate(divide="ignore"):
                key = np.log(w) - np.log(-np.log(rng.random(w.size)))  # Gumbel top-k = sampling w/o replacement
            top = np.argpartition(-key, k - 1)[:k]
            shown = lo + top[np.argsort(-key[top], kind="stable")]
            ts_parts.append(t + 2 * np.arange(k, dtype=np.int64))
            user_parts.append(np.full(k, u, dtype=np.int64))
            art_parts.append(shown)
            type_parts.append(np.zeros(k, dtype=np.int64))

            aff = aff_all[cat[shown]]
            reg = reg_all[region[shown]]
            reg = np.where(cat[shown] == regional, reg, reg ** 0.3)
            fresh = 0.5 + 0.5 * np.exp(-(t - pub[shown]) / (24 * 3600.0))
            p = (
                _CLICK_BASE * usr["clickiness"][u] * aff * reg * fresh * pop_click[shown]
                * (1.0 + 1.5 * followed[story[shown]]) / (1.0 + 0.07 * np.arange(k))
            )
            hits = np.flatnonzero(rng.random(k) < np.minimum(p, 0.85))
            cursor = t + 2 * k
            busy_until = cursor
            if hits.size == 0:
                continue
            draws = rng.random((hits.size, 4))
            for h, d in zip(hits, draws):
                a = int(shown[h])
                cursor += 3 + int(d[0] * 25)
                after.append((cursor, u, a, 1, np.nan))
                clicked[a] = True
                followed[story[a]] = True
                if d[1] < 0.55 + 0.3 * (aff[h] > 1.0):
                    mu = np.log(35.0) + 0.3 * np.log(aff[h])
                    dwell = float(np.clip(np.exp(mu + 0.6 * rng.standard_normal()) * word_factor[a], 3.0, 1200.0))
                    dwell = round(dwell, 1)
                    cursor += int(np.ceil(dwell))
                    after.append((cursor, u, a, 2, dwell))
                    if d[2] < 0.02 + 0.04 * (dwell > 90) + 0.04 * (pop[a] > 3):
                        cursor += 2 + int(d[3] * 20)
                        after.append((cursor, u, a, 3, np.nan))
            busy_until = cursor

    rest = np.array(after, dtype=np.float64).reshape(-1, 5)
    n_imp = sum(part.size for part in ts_parts)
    ev = {
        "ts": np.concatenate(ts_parts + [rest[:, 0].astype(np.int64)]),
        "user": np.concatenate(user_parts + [rest[:, 1].astype(np.int64)]),
        "article": np.concatenate(art_parts + [rest[:, 2].astype(np.int64)]),
        "etype": np.concatenate(type_parts + [rest[:, 3].astype(np.int64)]),
        "dwell": np.concatenate([np.full(n_imp, np.nan), rest[:, 4]]),
    }
    ts = ev["ts"]
    keep = ev["ts"] < end_s
    order = np.lexsort((np.arange(ts.size)[keep], ts[keep]))
    return {name: values[keep][order] for name, values in ev.items()}


def _iso_times(ts: np.ndarray) -> list[str]:
    """Epoch seconds as ISO-8601 strings in WIB, vectorized."""
    local = (np.asarray(ts, dtype=np.int64) + 7 * 3600).astype("datetime64[s]")
    return [s + "+07:00" for s in np.datetime_as_string(local, unit="s").tolist()]


def _event_records(ev: dict[str, np.ndarray], article_ids: list[str], user_ids: list[str]) -> list[dict[str, Any]]:
    iso = _iso_times(ev["ts"])
    dwell = [None if d != d else d for d in ev["dwell"].tolist()]  # NaN -> None
    return [
        {
            "event_id": f"e{i + 1:07d}",
            "user_id": user_ids[u],
            "article_id": article_ids[a],
            "event": EVENT_TYPES[e],
            "ts": t,
            "dwell_seconds": d,
        }
        for i, (u, a, e, t, d) in enumerate(
            zip(ev["user"].tolist(), ev["article"].tolist(), ev["etype"].tolist(), iso, dwell)
        )
    ]


def _preference_records(rng: np.random.Generator, usr: dict[str, Any]) -> list[dict[str, Any]]:
    """Explicit follows for ~40 % of readers: their strong categories (plus some noise), home region."""
    cat_w, home = usr["cat_w"], usr["home"]
    n_users, n_cat = cat_w.shape
    has = rng.random(n_users) < 0.4
    noise_cat = rng.random(n_users) < 0.15
    extra_cat = rng.integers(n_cat, size=n_users)
    follow_home = rng.random(n_users) < 0.7
    extra_reg = np.where(rng.random(n_users) < 0.1, rng.integers(len(REGIONS), size=n_users), -1)
    out = []
    for u in np.flatnonzero(has):
        cats = set(np.flatnonzero(cat_w[u] >= 0.2).tolist()) | {int(cat_w[u].argmax())}
        if noise_cat[u]:
            cats.add(int(extra_cat[u]))
        regs = set()
        if follow_home[u]:
            regs.add(int(home[u]))
        if extra_reg[u] >= 0:
            regs.add(int(extra_reg[u]))
        out.append(
            {
                "user_id": usr["ids"][u],
                "categories": [CATEGORIES[c] for c in sorted(cats)],
                "regions": [REGIONS[r] for r in sorted(regs)],
            }
        )
    return out


def _truth_records(art: dict[str, Any], usr: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"kind": "article", "article_id": a, "story_id": f"s{int(s) + 1:05d}"}
        for a, s in zip(art["ids"], art["story"].tolist())
    ]
    for u, uid in enumerate(usr["ids"]):
        out.append(
            {
                "kind": "user",
                "user_id": uid,
                "categories": {c: round(float(w), 4) for c, w in zip(CATEGORIES, usr["cat_w"][u])},
                "regions": {r: round(float(w), 4) for r, w in zip(REGIONS, usr["reg_w"][u])},
                "favourite_category": CATEGORIES[int(usr["favourite"][u])],
            }
        )
    return out
