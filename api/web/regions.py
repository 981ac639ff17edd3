"""The portal's regional editions a reader can follow: Indonesia's 38 provinces and main cities.

Each is ``(value, label)``: the value is what articles carry in ``region`` and what preferences
store (the short edition names regional portals use, e.g. ``Jabar``, as in the synthetic sample),
the label what a reader reads. Provinces as named since the 2022 Papua split; cities are the
provincial capitals and other large cities.
"""

from __future__ import annotations

PROVINCES = (
    ("Aceh", "Aceh"), ("Sumut", "Sumatera Utara"), ("Sumbar", "Sumatera Barat"), ("Riau", "Riau"),
    ("Kepri", "Kepulauan Riau"), ("Jambi", "Jambi"), ("Sumsel", "Sumatera Selatan"),
    ("Babel", "Kepulauan Bangka Belitung"), ("Bengkulu", "Bengkulu"), ("Lampung", "Lampung"),
    ("Jakarta", "DKI Jakarta"), ("Jabar", "Jawa Barat"), ("Banten", "Banten"), ("Jateng", "Jawa Tengah"),
    ("Yogyakarta", "DI Yogyakarta"), ("Jatim", "Jawa Timur"), ("Bali", "Bali"), ("NTB", "Nusa Tenggara Barat"),
    ("NTT", "Nusa Tenggara Timur"), ("Kalbar", "Kalimantan Barat"), ("Kalteng", "Kalimantan Tengah"),
    ("Kalsel", "Kalimantan Selatan"), ("Kaltim", "Kalimantan Timur"), ("Kaltara", "Kalimantan Utara"),
    ("Sulut", "Sulawesi Utara"), ("Gorontalo", "Gorontalo"), ("Sulteng", "Sulawesi Tengah"),
    ("Sulbar", "Sulawesi Barat"), ("Sulsel", "Sulawesi Selatan"), ("Sultra", "Sulawesi Tenggara"),
    ("Maluku", "Maluku"), ("Malut", "Maluku Utara"), ("Papua", "Papua"), ("Papua Barat", "Papua Barat"),
    ("Papua Barat Daya", "Papua Barat Daya"), ("Papua Tengah", "Papua Tengah"),
    ("Papua Pegunungan", "Papua Pegunungan"), ("Papua Selatan", "Papua Selatan"),
)

CITIES = tuple((c, c) for c in (
    "Bandung", "Bekasi", "Bogor", "Depok", "Tangerang", "Serang", "Semarang", "Solo", "Surabaya", "Malang",
    "Denpasar", "Mataram", "Kupang", "Medan", "Banda Aceh", "Padang", "Pekanbaru", "Batam", "Palembang",
    "Pangkalpinang", "Bandar Lampung", "Pontianak", "Palangka Raya", "Banjarmasin", "Samarinda", "Balikpapan",
    "Manado", "Palu", "Mamuju", "Makassar", "Kendari", "Ambon", "Ternate", "Jayapura", "Manokwari", "Sorong",
    "Merauke",
))

GROUPS = (("Provinsi", PROVINCES), ("Kota", CITIES))
VALUES = frozenset(value for _, group in GROUPS for value, _ in group)
