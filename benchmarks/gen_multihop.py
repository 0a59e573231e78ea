"""A seeded generator of multi-hop questions over a small world of people, companies, cities and projects.

    python benchmarks/gen_multihop.py --split test --show 2      # print a sample world

Each world is one project's memory: one fact per memory (who works where, where a company is based,
who reports to whom, who leads which project, what a project relies on), written with several
templates (some that the rule extractor does not parse: the graph must not be tuned to the data),
plus small talk and same-shaped facts about other people as distractors. Questions name only the
first entity of a chain and ask for the end of it, in words the second fact does not share:

- two_hop: "Which city is home to the company {person} works for?" (employment -> headquarters);
- manager: "Which company employs the person {person} reports to?" (reporting line -> employment);
- project: "What does the project {person} leads run on?" (project lead -> dependency);
- three_hop: "In which city is the employer of {person}'s manager?" (reporting -> employment -> HQ);
- one_hop: "Where does {person} work?" (a control: the graph must not hurt single-fact questions).

The evidence of a question is every memory of its chain. Splits are disjoint by seed: `dev` (seeds
1000+) to choose the graph's parameters, `test` (seeds 2000+) to report. The templates and questions
were written before any method was run on them.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field

__all__ = ["Fact", "Question", "World", "worlds"]

FIRST = ["Dana", "Priya", "Tomasz", "Ingrid", "Mateo", "Yuki", "Olu", "Freya", "Rashid", "Camille", "Bjorn",
         "Lucia", "Kwame", "Sanna", "Dmitri", "Amara", "Hugo", "Nadia", "Ezra", "Leila", "Alice", "Bob", "Maria",
         "Kenji", "Fatima", "Jonas"]  # fmt: skip
LAST = ["Varga", "Reyes", "Okafor", "Holm", "Strauss", "Menon", "Novak", "Berg", "Costa", "Ito", "Silva", "Moreau"]
COMPANIES = ["Norvale", "Quillon", "Brightmoor", "Tessaract", "Halvard", "Ostrava Labs", "Kestrel Systems",
             "Umbrio", "Veltrix", "Corvane", "Lumora", "Daxley Group"]  # fmt: skip
CITIES = ["Lisbon", "Porto", "Tallinn", "Krakow", "Valencia", "Ghent", "Bergen", "Lyon", "Bologna", "Gdansk",
          "Seville", "Aarhus"]  # fmt: skip
PROJECTS = ["Atlas", "Beacon", "Cinder", "Driftwood", "Ember", "Fathom", "Granite", "Harbor"]
TOOLS = ["PostgreSQL", "Kafka", "Redis", "Elasticsearch", "RabbitMQ", "ClickHouse", "Cassandra", "MinIO"]

WORKS = ["{p} works for {c}.", "{p} joined {c} last spring.", "{p} is a data analyst at {c}.",
         "{p} took a job with {c} after graduating.", "These days {p} is employed by {c}."]  # fmt: skip
BASED = ["{c} is headquartered in {city}.", "{c} is based in {city}.", "The head office of {c} sits in {city}.",
         "{c} has its headquarters in {city}."]  # fmt: skip
REPORTS = ["{p} reports to {m}.", "{m} manages {p} day to day.", "{p} answers directly to {m}."]
LEADS = ["{p} leads the {proj} project.", "The {proj} project is run by {p}.", "{p} heads up {proj}."]
USES = ["The {proj} project depends on {tool}.", "{proj} stores everything in {tool}.",
        "{proj} relies on {tool} for its data."]  # fmt: skip
SMALL_TALK = [
    "It rained the whole afternoon so I stayed in.", "Made a big pot of lentil soup tonight.",
    "The neighbours are renovating again, so noisy.", "Went for a long run along the river this morning.",
    "Traffic was terrible on the way back.", "Tried a new coffee place downtown, pretty good.",
    "I keep forgetting to water the plants.", "The heating bill this month was higher than usual.",
    "We played board games with friends on Saturday.", "My phone battery dies so quickly lately.",
    "There was a power cut for an hour yesterday.", "I signed up for a pottery class, first one soon.",
    "The quarterly planning meeting ran two hours over.", "Our team lunch moved to Thursday this week.",
    "The office printer jammed again this morning.", "Someone left a cake in the kitchen, nice surprise.",
]  # fmt: skip
QUESTIONS = {
    "two_hop": ["Which city is home to the company {p} works for?", "In what town is {p}'s employer located?"],
    "manager": ["Which company employs the person {p} reports to?", "Where does {p}'s boss have a job?"],
    "project": ["What does the project {p} leads run on?",
                "Which technology is behind the project {p} is in charge of?"],
    "three_hop": ["In which city is the employer of {p}'s manager?"],
    "one_hop": ["Where does {p} work?", "Who is {p}'s employer?"],
}  # fmt: skip


@dataclass
class Fact:
    id: str
    text: str


@dataclass
class Question:
    id: str
    kind: str  # two_hop | manager | project | three_hop | one_hop
    text: str
    evidence: list[str]  # fact ids, every one needed


@dataclass
class World:
    id: str
    facts: list[Fact] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


def _world(seed: int, people: int = 14) -> World:
    rng = random.Random(seed)
    world = World(id=f"w{seed}")
    pairs = zip(rng.sample(FIRST, people), rng.choices(LAST, k=people), strict=True)
    names = [f"{first} {last}" if rng.random() < 0.5 else first for first, last in pairs]
    companies = rng.sample(COMPANIES, 6)
    cities = rng.sample(CITIES, 6)
    projects = rng.sample(PROJECTS, 4)
    tools = rng.sample(TOOLS, 4)

    def say(templates: list[str], **values: str) -> str:
        fact = Fact(f"{world.id}-f{len(world.facts)}", rng.choice(templates).format(**values))
        world.facts.append(fact)
        return fact.id

    employer = {p: rng.choice(companies) for p in names}
    works = {p: say(WORKS, p=p, c=employer[p]) for p in names}
    based = {c: say(BASED, c=c, city=city) for c, city in zip(companies, cities, strict=True)}
    managers = names[:4]
    manager = {p: rng.choice([m for m in managers if m != p]) for p in names[4:]}
    reports = {p: say(REPORTS, p=p, m=m) for p, m in manager.items()}
    leads = {p: (proj, say(LEADS, p=p, proj=proj)) for p, proj in zip(rng.sample(names, 4), projects, strict=True)}
    uses = {proj: say(USES, proj=proj, tool=tool) for proj, tool in zip(projects, tools, strict=True)}
    for text in rng.sample(SMALL_TALK, 12):
        world.facts.append(Fact(f"{world.id}-f{len(world.facts)}", text))
    rng.shuffle(world.facts)

    def ask(kind: str, person: str, evidence: list[str]) -> None:
        text = rng.choice(QUESTIONS[kind]).format(p=person)
        world.questions.append(Question(f"{world.id}-q{len(world.questions)}", kind, text, evidence))

    for person in rng.sample(names, 4):
        ask("two_hop", person, [works[person], based[employer[person]]])
    for person in rng.sample(sorted(manager), 3):
        ask("manager", person, [reports[person], works[manager[person]]])
        ask("three_hop", person, [reports[person], works[manager[person]], based[employer[manager[person]]]])
    for person, (proj, lead) in list(leads.items())[:2]:
        ask("project", person, [lead, uses[proj]])
    for person in rng.sample(names, 3):
        ask("one_hop", person, [works[person]])
    return world


def worlds(split: str, n: int) -> list[World]:
    """`n` worlds of the split (`dev`: seeds 1000+, `test`: seeds 2000+)."""
    base = {"dev": 1000, "test": 2000}[split]
    return [_world(base + i) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--show", type=int, default=1)
    args = parser.parse_args()
    for world in worlds(args.split, args.show):
        print(f"== {world.id}: {len(world.facts)} facts, {len(world.questions)} questions")
        by_id = {f.id: f.text for f in world.facts}
        for fact in world.facts[:12]:
            print("  ", fact.text)
        for question in world.questions:
            print(f"  [{question.kind}] {question.text}")
            for evidence in question.evidence:
                print("      <-", by_id[evidence])


if __name__ == "__main__":
    main()
