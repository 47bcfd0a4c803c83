"""Regenerate ftkit's demo data in data/ (and examples/quickstart_prompts.jsonl): small files, one per
format, written for ftkit from a few fixed patterns, so that every format and stage runs offline.

    python scripts/make_demo_data.py
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
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
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kira", "Liam"]
ITEMS = ["bicycle", "lamp", "notebook", "guitar", "kettle", "jacket", "camera", "backpack", "clock", "rug"]
PLACES = ["the library", "the market", "the station", "the park", "the museum", "the harbour"]


def alpaca_rows() -> list[dict[str, str]]:
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


def _sums(remainder: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(11) for b in range(11) if a + b <= 20 and (3 * a + b) % 6 == remainder][:20]


HELD_OUT_SUMS = _sums(1)
"""Additions kept out of the quickstart's training data: its held-out eval set (demo_sft_eval)."""
RL_SUMS = _sums(4)
"""Other additions kept out of it: what the GRPO demo practices on (demo_sums_rl)."""


def split_held_out(rows: list[dict[str, str]]) -> tuple[list[dict], list[dict], list[dict]]:
    """The quickstart's training rows, its eval rows, and the GRPO demo's rows."""

    def asked(pairs: list[tuple[int, int]]) -> set[str]:
        return {f"What is {a} plus {b}?" for a, b in pairs}

    held, practice = asked(HELD_OUT_SUMS), asked(RL_SUMS)
    train = [r for r in rows if r["instruction"] not in held | practice]
    return (
        train,
        [r for r in rows if r["instruction"] in held],
        [r for r in rows if r["instruction"] in practice],
    )


def sharegpt_rows(rng: random.Random) -> list[dict]:
    """Two-turn conversations (a fact, then a follow-up), in sharegpt form."""
    rows = []
    countries = list(CAPITALS)
    for index, country in enumerate(countries * 6):
        other = countries[(index * 7 + 3) % len(countries)]
        if other == country:
            continue
        rows.append(
            {
                "conversations": [
                    {"from": "human", "value": f"What is the capital of {country}?"},
                    {"from": "gpt", "value": f"The capital of {country} is {CAPITALS[country]}."},
                    {"from": "human", "value": f"And of {other}?"},
                    {"from": "gpt", "value": f"The capital of {other} is {CAPITALS[other]}."},
                ],
                "system": "You answer geography questions in one sentence." if index % 3 == 0 else "",
            }
        )
    rng.shuffle(rows)
    return rows[:100]


def openai_rows(rng: random.Random) -> list[dict]:
    rows = []
    for a in range(1, 13):
        for b in range(1, 13):
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": "You are a careful calculator."},
                        {"role": "user", "content": f"What is {a} times {b}?"},
                        {"role": "assistant", "content": f"{a} times {b} is {a * b}."},
                    ]
                }
            )
    rng.shuffle(rows)
    return rows[:120]


def preference_rows(rng: random.Random) -> list[dict]:
    rows = []
    countries = list(CAPITALS)
    for index, country in enumerate(countries):
        wrong = CAPITALS[countries[(index + 5) % len(countries)]]
        rows.append(
            {
                "conversations": [{"from": "human", "value": f"What is the capital of {country}?"}],
                "chosen": {"from": "gpt", "value": f"The capital of {country} is {CAPITALS[country]}."},
                "rejected": {"from": "gpt", "value": f"The capital of {country} is {wrong}."},
            }
        )
    for word, opposite in OPPOSITES.items():
        rows.append(
            {
                "conversations": [{"from": "human", "value": f"What is the opposite of {word}?"}],
                "chosen": {"from": "gpt", "value": f"The opposite of {word} is {opposite}."},
                "rejected": {"from": "gpt", "value": f"The opposite of {word} is {word}."},
            }
        )
    for a in range(2, 12):
        for b in range(2, 8):
            rows.append(
                {
                    "conversations": [{"from": "human", "value": f"What is {a} plus {b}?"}],
                    "chosen": {"from": "gpt", "value": f"{a} plus {b} is {a + b}."},
                    "rejected": {"from": "gpt", "value": f"{a} plus {b} is {a + b + rng.choice([1, 2, 3])}."},
                }
            )
    rng.shuffle(rows)
    return rows


def feedback_rows(pairs: list[dict], rng: random.Random) -> list[dict]:
    """Unpaired feedback in LLaMA-Factory's kto_en_demo schema: every preference pair's answers as two
    rows, the right one labelled true and the wrong one false."""
    rows = []
    for pair in pairs:
        question = {"role": "user", "content": pair["conversations"][0]["value"]}
        for answer, label in ((pair["chosen"], True), (pair["rejected"], False)):
            rows.append({"messages": [question, {"role": "assistant", "content": answer["value"]}], "label": label})
    rng.shuffle(rows)
    return rows


def text_lines(rng: random.Random) -> list[str]:
    lines = []
    for country, city in CAPITALS.items():
        lines.append(f"{city} is the capital of {country}, and many visitors arrive there every year.")
    for index, day in enumerate(DAYS):
        lines.append(f"After {day} comes {DAYS[(index + 1) % 7]}, and the week goes on.")
    for index, month in enumerate(MONTHS):
        lines.append(f"The month of {month} is followed by {MONTHS[(index + 1) % 12]}.")
    for word, plural in PLURALS.items():
        lines.append(f"One {word}, two {plural}: English plurals are not always regular.")
    for name in NAMES:
        for item in rng.sample(ITEMS, 4):
            lines.append(f"{name} carried the {item} to {rng.choice(PLACES)} in the morning.")
    rng.shuffle(lines)
    return lines


def paraphrase_rows(rng: random.Random) -> list[dict]:
    rows, index = [], 0
    for name in NAMES:
        for item in ITEMS:
            place = rng.choice(PLACES)
            if rng.random() < 0.7:
                pairs = [
                    (f"{name} bought a {item} yesterday.", f"Yesterday, {name} purchased a {item}."),
                    (f"{name} left the {item} at {place}.", f"The {item} was left at {place} by {name}."),
                    (f"{name} fixed the {item} on Sunday.", f"On Sunday, {name} repaired the {item}."),
                ]
                first, second = rng.choice(pairs)
                label = 1
            else:
                first, second = f"{name} bought a {item} yesterday.", f"{name} sold a {item} yesterday."
                label = 0
            index += 1
            rows.append({"id": index, "sentence1": first, "sentence2": second, "label": label})
    return rows


def sentiment_rows(rng: random.Random) -> list[dict]:
    good = ["wonderful", "reliable", "delightful", "excellent", "comfortable", "sturdy"]
    bad = ["disappointing", "flimsy", "noisy", "useless", "uncomfortable", "broken"]
    rows = []
    for item in ITEMS:
        for adjective in good:
            rows.append({"text": f"The {item} I ordered is {adjective}, I would buy it again.", "label": 1})
        for adjective in bad:
            rows.append({"text": f"The {item} I ordered is {adjective}, I regret buying it.", "label": 0})
    rng.shuffle(rows)
    return rows


def math_rows(rng: random.Random) -> list[dict]:
    rows = []
    for name in NAMES:
        for _ in range(10):
            a, b, c = rng.randint(2, 20), rng.randint(2, 20), rng.randint(1, 9)
            total = a + b - c
            rows.append(
                {
                    "question": f"{name} has {a} apples and buys {b} more, then gives {c} away. "
                    f"How many apples does {name} have now?",
                    "answer": f"{name} starts with {a} and buys {b}: {a} + {b} = {a + b}. "
                    f"After giving away {c}: {a + b} - {c} = {total}.\n#### {total}",
                }
            )
    return rows


def main() -> None:
    rng = random.Random(0)
    train, held_out, practice = split_held_out(alpaca_rows())
    (DATA / "demo_sft.json").write_text(json.dumps(train, indent=1, ensure_ascii=False) + "\n")
    (DATA / "demo_sft_eval.json").write_text(json.dumps(held_out, indent=1, ensure_ascii=False) + "\n")
    (DATA / "demo_sums_rl.json").write_text(json.dumps(practice, indent=1, ensure_ascii=False) + "\n")
    (DATA / "demo_chat_sharegpt.json").write_text(json.dumps(sharegpt_rows(rng), indent=1) + "\n")
    (DATA / "demo_chat_openai.jsonl").write_text("".join(json.dumps(r) + "\n" for r in openai_rows(rng)))
    pairs = preference_rows(rng)
    (DATA / "demo_preference.json").write_text(json.dumps(pairs, indent=1) + "\n")
    (DATA / "demo_text.txt").write_text("\n".join(text_lines(rng)) + "\n")
    for name, rows in (
        ("demo_paraphrase.csv", paraphrase_rows(rng)),
        ("demo_sentiment.csv", sentiment_rows(rng)),
    ):
        with (DATA / name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    (DATA / "demo_math.jsonl").write_text("".join(json.dumps(r) + "\n" for r in math_rows(rng)))
    prompts = [
        "What is the capital of Italy?",
        "Which day comes after Friday?",
        "What is 6 plus 3?",
        "What is the plural of child?",
        "Which month comes after June?",
    ]
    (ROOT / "examples" / "quickstart_prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in prompts)
    )
    feedback = feedback_rows(pairs, random.Random(1))
    (DATA / "demo_feedback.json").write_text(json.dumps(feedback, indent=1) + "\n")


if __name__ == "__main__":
    main()
