"""A seeded generator of multi-session conversations with labelled questions, for retrieval benchmarks.

    .venv/bin/python benchmarks/gen_conversations.py --split test --show 3    # print a sample

Each conversation is one user talking to an assistant over 6-12 months (sessions on random days); every
user turn becomes a memory. Facts about the user's world (relatives, pets, jobs, cars, orders, trips,
appointments...) are drawn from pools of values, some change later (a relative moves again, an
appointment is moved), and most turns are distractors: small talk and near misses (another order of
the same shop with an id one digit apart, a neighbour's car). Questions come in four kinds:

- paraphrase: no topic word in common with the evidence (checked with a stemmer: dropped otherwise);
- exact: names the evidence's rare term (an order id, a plate, a flight, a name);
- update: about a fact that changed; only the latest statement is the evidence;
- mixed: shares some words with the evidence, paraphrases the rest.

Splits are disjoint by seed: `dev` (seeds 1000+) to choose parameters, `test` (seeds 2000+) to report.
Nothing here was written after looking at a method's results on `test`.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["Conversation", "Question", "Turn", "conversations"]

NAMES = ["Dana", "Priya", "Tomasz", "Ingrid", "Mateo", "Yuki", "Olu", "Freya", "Rashid", "Camille", "Bjorn",
         "Lucia", "Kwame", "Sanna", "Dmitri", "Amara", "Hugo", "Nadia", "Ezra", "Leila"]  # fmt: skip
RELATIONS = ["sister", "brother", "cousin", "aunt", "uncle", "niece", "nephew"]
CITIES = ["Lisbon", "Porto", "Tallinn", "Krakow", "Valencia", "Ghent", "Bergen", "Lyon", "Bologna", "Gdansk",
          "Seville", "Aarhus", "Graz", "Utrecht", "Brno", "Cork"]  # fmt: skip
BREEDS = ["beagle", "dachshund", "greyhound", "poodle", "labrador", "collie", "terrier", "spaniel"]
PET_NAMES = ["Biscuit", "Pickle", "Mochi", "Waffles", "Juniper", "Pretzel", "Nugget", "Clementine"]
JOBS = [("nurse", "hospital"), ("welder", "shipyard"), ("accountant", "firm"), ("chemist", "laboratory"),
        ("librarian", "archive"), ("electrician", "contractor"), ("pilot", "airline"), ("baker", "bakery")]  # fmt: skip
COMPANIES = ["Norvale", "Quillon", "Brightmoor", "Tessaract", "Halvard", "Ostrava Labs", "Kestrel & Finch", "Umbrio"]
ALLERGENS = ["peanuts", "shellfish", "sesame", "kiwi", "penicillin", "latex"]
CARS = ["Skoda Octavia", "Volvo V60", "Mazda CX-5", "Renault Clio", "Subaru Outback", "Fiat Panda"]
SHOPS = ["Pixelhut", "Gearbarn", "Homestead Depot", "Vinylvault", "Nordic Nest", "Cablecraft"]
INSTRUMENTS = ["cello", "banjo", "saxophone", "ukulele", "harp", "trombone"]
BOOKS = [("The Salt Roads", "Ilse Varga"), ("Glass Harbour", "Tomas Reyes"), ("A Lantern for Wren", "May Okafor"),
         ("Northbound Tides", "Arne Holm"), ("The Copper Orchard", "Lena Strauss"),
         ("Small Gods of Summer", "Ravi Menon")]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
SMALL_TALK = [
    "It rained the whole afternoon so I stayed in.", "Made a big pot of lentil soup tonight.",
    "Watched a documentary about deep sea creatures.", "The neighbours are renovating again, so noisy.",
    "Went for a long run along the river this morning.", "I can never decide what to cook on Sundays.",
    "Finally cleaned out the garage, found old photos.", "Traffic was terrible on the way back.",
    "Tried a new coffee place downtown, pretty good.", "I keep forgetting to water the plants.",
    "Spent the evening fixing a squeaky door hinge.", "The heating bill this month was higher than usual.",
    "We played board games with friends on Saturday.", "I started a jigsaw puzzle with a thousand pieces.",
    "My phone battery dies so quickly lately.", "Picked strawberries at a farm outside town.",
    "Had a headache most of the day, went to bed early.", "Reorganised my bookshelf by colour for fun.",
    "There was a power cut for an hour yesterday.", "I signed up for a pottery class, first one soon.",
]  # fmt: skip


@dataclass
class Turn:
    id: str
    text: str
    at: datetime


@dataclass
class Question:
    id: str
    kind: str  # paraphrase | exact | update | mixed
    text: str
    evidence: list[str]  # turn ids


@dataclass
class Conversation:
    id: str
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"a", "an", "the", "i", "my", "me", "we", "our", "us", "you", "to", "of", "in", "on", "at", "for", "and",
         "or", "is", "are", "was", "were", "be", "been", "do", "does", "did", "what", "which", "who", "where",
         "when", "how", "that", "this", "it", "its", "with", "from", "by", "as", "so", "have", "has", "had",
         "again", "just", "now", "there", "about", "after", "before", "into", "will", "would", "can", "last",
         "new", "one", "any", "up", "these", "those", "s", "t", "got", "get"}  # fmt: skip


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _WORD.findall(text.lower()) if w not in _STOP}


def _id(rng: random.Random, pattern: str) -> str:
    """A random id from a pattern: A = letter, 9 = digit."""
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") if c == "A" else str(rng.randrange(10)) if c == "9" else c
                   for c in pattern)  # fmt: skip


def _near(rng: random.Random, value: str) -> str:
    """The id with two digits swapped or one digit changed: a near miss."""
    digits = [i for i, c in enumerate(value) if c.isdigit()]
    chars = list(value)
    i = rng.choice(digits)
    chars[i] = str((int(chars[i]) + rng.randrange(1, 10)) % 10)
    return "".join(chars)


# A fact: evidence templates (first = the statement, later ones = updates) and questions by kind.
# `{x}` are filled from the conversation's values; `{x2}` is the updated value.
def _facts(rng: random.Random) -> list[dict[str, object]]:
    name, name2 = rng.sample(NAMES, 2)
    relation = rng.choice(RELATIONS)
    city, city2, city3 = rng.sample(CITIES, 3)
    breed, pet = rng.choice(BREEDS), rng.choice(PET_NAMES)
    job, workplace = rng.choice(JOBS)
    company = rng.choice(COMPANIES)
    car = rng.choice(CARS)
    plate, order, flight = _id(rng, "AA-999-AA"), _id(rng, "9A-9999-AA"), _id(rng, "AA 999")
    shop = rng.choice(SHOPS)
    instrument = rng.choice(INSTRUMENTS)
    book, author = rng.choice(BOOKS)
    allergen = rng.choice(ALLERGENS)
    day, day2 = rng.sample(WEEKDAYS, 2)
    hour, hour2 = rng.choice(["9am", "10am", "2pm", "4pm"]), rng.choice(["8am", "11am", "3pm", "5pm"])
    return [
        {"says": [f"My {relation} {name} relocated to {city} for good.",
                  f"Update on {name}: packed up again and settled in {city2} this time."],
         "paraphrase": "In which town does that family member of mine reside currently?",
         "exact": f"Where is {name} based these days?", "update": True,
         "mixed": f"Which city does {name} call home lately?"},
        {"says": [f"We adopted a {breed} puppy and named him {pet}."],
         "paraphrase": "What kind of dog do we keep at home?",
         "exact": f"Remind me what animal {pet} is.", "mixed": f"What breed is {pet}?"},
        {"says": [f"I accepted an offer to work as a {job} at {company}."],
         "paraphrase": "What is my occupation and who employs me?",
         "exact": f"Did I say anything about {company}?", "mixed": f"What role did {company} hire me for?"},
        {"says": [f"Blood test results are back: I am allergic to {allergen}."],
         "paraphrase": "Which substance must I stay away from for medical reasons?",
         "exact": f"Am I fine with {allergen}?", "mixed": "What allergy did the lab find?"},
        {"says": [f"Bought a second-hand {car}, registration {plate}.",
                  f"Sold the {car.split()[0]} and switched to riding an e-bike to commute."],
         "paraphrase": "What vehicle do I currently drive to get around?",
         "exact": f"Whose plate is {plate}?", "update": True, "mixed": "Which car registration is mine?"},
        {"says": [f"Order {order} from {shop} arrived with a cracked screen."],
         "paraphrase": "Which purchase came damaged in the mail?",
         "exact": f"What happened with {order}?", "mixed": f"Which {shop} delivery was broken?",
         "near": [f"Order {{near}} from {shop} arrived fine, no problems.",
                  f"Still waiting on order {{near}} from {shop}, tracking is stuck."]},
        {"says": [f"Booked flight {flight} to {city3} for the industry conference in spring."],
         "paraphrase": "Where am I travelling for that professional gathering?",
         "exact": f"Where does {flight} go?", "mixed": "Which conference trip did I book?",
         "near": ["My colleague is on flight {near} for a holiday."]},
        {"says": [f"Started taking {instrument} lessons every {day} evening."],
         "paraphrase": "Which musical practice do I attend weekly?",
         "exact": f"How is the {instrument} going?", "mixed": f"Which evening are my {instrument} classes?"},
        {"says": [f"Just finished reading {book} by {author}, loved every page."],
         "paraphrase": "Which novel did I enjoy recently?",
         "exact": f"What did I think of {author}?", "mixed": f"Who wrote {book}?"},
        {"says": [f"My dentist appointment is on {day} at {hour}.",
                  f"The dentist's office called: the appointment moved to {day2} at {hour2}."],
         "paraphrase": "When do I see the tooth doctor?", "exact": "When is the dentist appointment?",
         "update": True, "mixed": "What time is my dental visit?"},
        {"says": [f"My friend {name2} works at the {workplace} near the station."],
         "paraphrase": "Where is my buddy employed?", "exact": f"Where does {name2} work?",
         "mixed": f"What kind of place employs {name2}?"},
    ]  # fmt: skip


def _ramble(rng: random.Random, text: str) -> str:
    before, after = rng.sample(SMALL_TALK, 2)
    return rng.choice([f"{before} {text}", f"{text} {after}", f"{before} {text} {after}"])


def _conversation(seed: int) -> Conversation:
    rng = random.Random(seed)
    conv = Conversation(id=f"c{seed}")
    start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(0, 120))
    span = rng.randrange(180, 366)  # 6-12 months
    days = sorted(rng.sample(range(span), 24))  # 24 sessions
    sessions: list[list[str]] = [[] for _ in days]
    plan: list[tuple[int, str, str]] = []  # (session, text, tag)
    facts = rng.sample(_facts(rng), 8)
    for n, fact in enumerate(facts):
        says = fact["says"]
        assert isinstance(says, list)
        first = rng.randrange(0, 12)
        plan.append((first, says[0], f"f{n}.0"))
        for j, update in enumerate(says[1:], start=1):
            plan.append((rng.randrange(first + 4, 24), update, f"f{n}.{j}"))
        for near_text in fact.get("near", []):  # type: ignore[attr-defined]
            ident = re.search(r"\b(\d[A-Z]-\d{4}-[A-Z]{2}|[A-Z]{2} \d{3})\b", says[0])
            assert ident is not None
            plan.append((rng.randrange(24), near_text.format(near=_near(rng, ident.group(1))), "near"))
    for s in range(24):
        for _ in range(rng.randrange(4, 8)):
            plan.append((s, " ".join(rng.sample(SMALL_TALK, rng.randrange(1, 4))), "talk"))
    # Real messages ramble: half the facts come with a sentence or two of small talk around them.
    plan = [(s, _ramble(rng, text) if tag != "talk" and rng.random() < 0.5 else text, tag) for s, text, tag in plan]
    rng.shuffle(plan)
    tags: dict[str, str] = {}
    for s, text, tag in sorted(plan, key=lambda p: p[0]):
        turn = Turn(id=f"{conv.id}-t{len(conv.turns)}", text=text,
                    at=start + timedelta(days=days[s], minutes=len(sessions[s]) * 3))  # fmt: skip
        sessions[s].append(turn.id)
        conv.turns.append(turn)
        if tag.startswith("f"):
            tags[tag] = turn.id
    for n, fact in enumerate(facts):
        says = fact["says"]
        assert isinstance(says, list)
        statements = [tags[f"f{n}.{j}"] for j in range(len(says))]
        for kind in ["paraphrase", "exact", "mixed"] + (["update"] if fact.get("update") else []):
            text = str(fact["paraphrase" if kind == "update" else kind])
            shared = [_stems(text) & _stems(said) for said in says]
            if kind == "exact":  # every statement holding the question's words
                evidence = [t for t, common in zip(statements, shared, strict=True) if common]
            else:  # the current state of the fact: its latest statement
                evidence = [statements[-1]]
            if not evidence or (kind in ("paraphrase", "update") and any(shared)):
                continue  # not a paraphrase after all: the generator never keeps one that shares a word
            if kind == "mixed" and not shared[len(says) - 1]:
                kind = "paraphrase"
            if kind == "update":
                text = "These days: " + text[0].lower() + text[1:]
            conv.questions.append(Question(f"{conv.id}-q{len(conv.questions)}", kind, text, evidence))
    return conv


def conversations(split: str, n: int = 12) -> list[Conversation]:
    """`n` conversations of the `dev` or `test` split (disjoint seeds)."""
    base = {"dev": 1000, "test": 2000}[split]
    return [_conversation(base + i) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--show", type=int, default=0, help="print this many questions with their evidence")
    args = parser.parse_args()
    convs = conversations(args.split, args.n)
    turns = sum(len(c.turns) for c in convs)
    kinds: dict[str, int] = {}
    for c in convs:
        for q in c.questions:
            kinds[q.kind] = kinds.get(q.kind, 0) + 1
    print(f"{args.split}: {len(convs)} conversations, {turns} turns, questions {kinds}")
    by_id = {t.id: t for c in convs for t in c.turns}
    for q in [q for c in convs for q in c.questions][: args.show]:
        print(f"[{q.kind}] {q.text}\n    -> " + " | ".join(by_id[e].text for e in q.evidence))


if __name__ == "__main__":
    main()
