"""Regenerate ``forest-grid.csv``: a synthetic 24x24 grid of red/NIR reflectances.

Why synthetic: it stands in for a Sentinel-2 tile (reflectance scaled by 10,000) with a
known story: forest everywhere in 2015 except a river and a village, a clearing that grows
along a road by 2023, and a small patch regrowing.  Values stay clear of the 0.5 NDVI
threshold so the classification does not hinge on rounding.  Deterministic (seeded).

Run: ``python workflows/data/make_forest_grid.py > workflows/data/forest-grid.csv``
"""

import random

SIZE = 24


def cell(rng: random.Random, kind: str) -> tuple[int, int]:
    """(red, nir) for a land-cover kind; NDVI ~0.75 forest, ~0.15 bare, ~-0.3 water."""
    if kind == "forest":
        red = rng.randint(250, 450)
        nir = rng.randint(2800, 3800)
    elif kind == "water":
        red = rng.randint(500, 700)
        nir = rng.randint(250, 400)
    else:  # bare soil, road, settlement
        red = rng.randint(1500, 2100)
        nir = rng.randint(2100, 2700)
    return red, nir


def cover(x: int, y: int, year: int) -> str:
    if x in (3, 4):
        return "water"
    if 18 <= x <= 21 and 2 <= y <= 5:
        return "bare" if year == 2015 else "forest"  # regrowth
    if 18 <= x <= 22 and 18 <= y <= 22:
        return "bare"  # village
    if year == 2023 and (y == 12 or (8 <= x <= 15 and 9 <= y <= 16)):
        return "bare"  # road and clearing
    return "forest"


def main() -> None:
    rng = random.Random(2023)
    print("x,y,red_2015,nir_2015,red_2023,nir_2023")
    for y in range(SIZE):
        for x in range(SIZE):
            r0, n0 = cell(rng, cover(x, y, 2015))
            r1, n1 = cell(rng, cover(x, y, 2023))
            print(f"{x},{y},{r0},{n0},{r1},{n1}")


if __name__ == "__main__":
    main()
