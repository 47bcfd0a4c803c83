"""Regenerate data/demo_sft.json and examples/quickstart_prompts.jsonl: short factual question/answer
pairs in a few fixed patterns, small enough for a tiny model to learn on a CPU in a minute or two.

    python scripts/make_demo_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Japan": "Tokyo",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Greece": "Athens",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Chile": "Santiago",
    "Cuba": "Havana",
    "India": "New Delhi",
    "China": "Beijing",
}
OPPOSITES = {
    "hot": "cold",
    "big": "small",
    "fast": "slow",
    "happy": "sad",
    "early": "late",
    "light": "dark",
    "open": "closed",
    "full": "empty",
    "high": "low",
    "old": "young",
    "strong": "weak",
    "rich": "poor",
    "wet": "dry",
    "loud": "quiet",
    "hard": "soft",
    "long": "short",
}
PLURALS = {
    "mouse": "mice",
    "child": "children",
    "foot": "feet",
    "tooth": "teeth",
    "goose": "geese",
    "man": "men",
    "woman": "women",
    "person": "people",
    "leaf": "leaves",
    "knife": "knives",
    "box": "boxes",
    "city": "cities",
    "bus": "buses",
    "wolf": "wolves",
    "cactus": "cacti",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]


def rows() -> list[dict[str, str]]:
    out = []

    def add(instruction: str, output: str, input_: str = "") -> None:
        out.append({"instruction": instruction, "input": input_, "output": output})

    for country, city in CAPITALS.items():
        add(f"What is the capital of {country}?", f"The capital of {country} is {city}.")
    for word, opposite in OPPOSITES.items():
        add("Give the opposite of the word.", f"The opposite of {word} is {opposite}.", word)
        add("Give the opposite of the word.", f"The opposite of {opposite} is {word}.", opposite)
    for word, plural in PLURALS.items():
        add(f"What is the plural of {word}?", f"The plural of {word} is {plural}.")
    for index, day in enumerate(DAYS):
        add(f"Which day comes after {day}?", f"{DAYS[(index + 1) % 7]} comes after {day}.")
    for index, month in enumerate(MONTHS):
        add(f"Which month comes after {month}?", f"{MONTHS[(index + 1) % 12]} comes after {month}.")
    for a in range(0, 11):
        for b in range(0, 11):
            if a + b <= 20:
                add(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.")
    for number, word in enumerate(NUMBERS):
        add("Write the number in words.", f"{number} is written {word}.", str(number))
    random.Random(0).shuffle(out)
    return out


def main() -> None:
    data = rows()
    (ROOT / "data" / "demo_sft.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    prompts = [
        "What is the capital of Italy?",
        "Which day comes after Friday?",
        "What is 6 plus 3?",
        "What is the plural of child?",
        "Which month comes after June?",
    ]
    lines = "".join(json.dumps({"prompt": p}) + "\n" for p in prompts)
    (ROOT / "examples" / "quickstart_prompts.jsonl").write_text(lines)
    print(f"{len(data)} rows")


if __name__ == "__main__":
    main()
