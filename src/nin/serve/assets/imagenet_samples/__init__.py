"""ModelHub's NIN sample photos (Pexels licence, see LICENSE-sample_data.txt)."""
