"""A seeded generator of chatty two-person conversations, where lexical search is the strong side.

    .venv/bin/python benchmarks/gen_chatty.py --split test --show 3    # print a sample

The regime of real chat logs (LoCoMo-like), unlike `gen_conversations.py` (short, one-fact turns, which
a sentence embedder handles well): two friends talk over 6-10 months; every turn ("Name: text") becomes
a memory. Turns are long and chatty (~50 words): feelings and small talk around the facts, friends and
other pastimes mentioned in passing, sometimes two facts in one turn. Each speaker keeps coming back to
four pastimes (paints, hikes, cooks, sees a doctor...), doing each four to six times with different
specifics, so dozens of turns are near duplicates on one theme; the specifics come up again before and
after the event and in the friend's replies. Questions name a speaker (in half the turns) and the
specifics that tell one event from its near duplicates, written out verbatim in the evidence turn, with
the theme's verb as said or (half the time) paraphrased:

- when:  "When did Maya paint the old lighthouse?"      (the object, verbatim)
- who:   "Who did Maya hike Glencoe Ridge with?"        (the place, verbatim; the answer is not in the question)
- what:  "What did Maya cook with Anselm?"              (the companion, verbatim)
- topic: "What kinds of artwork has Maya created?"      (no specific, paraphrased: every such event)

`kind` is the question form, with `-para` when the theme's verb is paraphrased (no theme word shared).
With MiniLM this regime is lexical-strong (dev, 3 conversations: bm25s recall@10 0.79, MiniLM 0.70),
as on real conversations (0.57 / 0.43); the mix of forms was set for that before any fusion was tuned.
Splits are disjoint by seed: `dev` (seeds 3000+) to choose parameters, `test` (seeds 4000+) to report.
Nothing here was written after looking at a method's results on `test`.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta

from gen_conversations import Conversation, Question, Turn

__all__ = ["conversations"]

SPEAKERS = ["Maya", "Jonas", "Aiko", "Rafael", "Greta", "Tobias", "Nia", "Lorenzo", "Ines", "Callum", "Sofia",
            "Mikael", "Zara", "Oskar", "Elena", "Theo"]  # fmt: skip
FRIENDS = ["Anselm", "Birgit", "Cosimo", "Delphine", "Evander", "Fenna", "Gideon", "Hedda", "Ivo", "Juno",
           "Kasimir", "Liesel", "Marek", "Noor", "Orla", "Pavel", "Quinn", "Rosalind", "Stellan", "Tamsin"]  # fmt: skip

# A topic: how a speaker tells an event (`say`, with {x} the specific and {who} a companion), the verb a
# question uses as said (`q`) and paraphrased (`para`, sharing no word with `say`), the specifics, and
# same-topic sentences without specifics (`filler`) and the friend's replies (`react`).
TOPICS: list[dict[str, object]] = [
    {"say": ["I finally finished painting {x} with {who}, it took three weekends.",
             "Spent the whole of Sunday painting {x} next to {who}, my hands are still blue."],
     "q": "paint", "para": "make a picture of",
     "ask": "What kinds of artwork has {s} created?",
     "x": ["the old lighthouse", "a fox in the snow", "a field of sunflowers", "the harbour at dusk",
           "a bowl of lemons", "my grandmother's cottage", "a stormy sea", "the cathedral spires"],
     "filler": ["Painting has been my therapy lately, I do a bit most evenings.",
                "I bought new brushes and a bigger canvas for painting.", "Painting outdoors is so peaceful."],
     "react": ["Your painting sounds beautiful, you are so talented!", "I wish I could paint like you do."]},
    {"say": ["{who} and I hiked {x} on Saturday, the view from the top was unreal.",
             "We did the hike up {x} with {who}, nine hours and my knees are done."],
     "q": "hike", "para": "trek along",
     "ask": "Which mountains and trails has {s} trekked?",
     "x": ["Glencoe Ridge", "Mount Tallac", "the Kesterfell trail", "Ben Lomond", "the Vardal pass",
           "Skalnate lake", "the Moraine loop", "Pico Ruivo"],
     "filler": ["I really need a hike soon, the city is getting to me.", "Hiking boots finally broken in!",
                "Nothing clears my head like a long hike."],
     "react": ["That hike sounds tough but amazing!", "You hike so much, I am jealous of your legs."]},
    {"say": ["Cooked {x} for {who} last night and it actually turned out great.",
             "I tried cooking {x} with {who} and we nearly set off the smoke alarm."],
     "q": "cook", "para": "prepare a meal of",
     "ask": "Which dishes has {s} prepared for people?",
     "x": ["mushroom risotto", "lamb tagine", "pad thai", "beef bourguignon", "saffron paella", "miso ramen",
           "stuffed peppers", "shakshuka"],
     "filler": ["Cooking at home is saving me so much money.", "I cooked way too much food again this week.",
                "Cooking is the one thing that relaxes me after work."],
     "react": ["Now I am hungry, your cooking always sounds so good.", "You have to cook for me sometime!"]},
    {"say": ["Went to see {x} live with {who}, the concert was so loud my ears are ringing.",
             "{who} got us tickets to {x}, best concert of the year easily."],
     "q": "see in concert", "para": "watch perform on stage",
     "ask": "Which bands has {s} watched perform?",
     "x": ["The Velvet Owls", "Marrow and Pine", "Lucid Harbour", "the Brasswind Collective", "Ottoline Grey",
           "Static Meridian", "the Juniper Kings", "Halcyon Drift"],
     "filler": ["I have not been to a concert in ages, I miss live music.", "Concert tickets are so expensive now.",
                "Live music just hits different."],
     "react": ["That concert sounds incredible!", "I love live music too, take me next time."]},
    {"say": ["Just finished reading {x}, {who} recommended it and I could not put it down.",
             "Reading {x} in the book club with {who}, the ending made me cry."],
     "q": "read", "para": "get through the novel",
     "ask": "Which novels has {s} got through?",
     "x": ["The Salt Roads", "Glass Harbour", "A Lantern for Wren", "Northbound Tides", "The Copper Orchard",
           "Small Gods of Summer", "The Ninth Meridian", "Paper Lanterns"],
     "filler": ["I have been reading a lot before bed instead of scrolling.", "My reading pile keeps growing.",
                "Reading is the best escape honestly."],
     "react": ["I need a good book to read, that sounds great.", "You read so much more than me."]},
    {"say": ["Volunteered at {x} with {who} this weekend, it was exhausting but meaningful.",
             "{who} talked me into volunteering at {x}, we sorted donations all morning."],
     "q": "volunteer at", "para": "help out for free at",
     "ask": "Where has {s} helped out unpaid?",
     "x": ["the Riverside food bank", "Harbor Animal Shelter", "the Eastgate soup kitchen",
           "the Linden youth centre", "Saint Brendan hospice", "the Moorfield library", "the Pinecrest care home",
           "the Westbrook clothes drive"],
     "filler": ["Volunteering makes me feel like I am doing something useful.", "I want to volunteer more often.",
                "The volunteer coordinator asked if I can do more shifts."],
     "react": ["That is so kind of you to volunteer.", "Volunteering sounds so rewarding!"]},
    {"say": ["Ran {x} with {who} this morning, new personal best and I could barely walk after.",
             "{who} and I signed up for {x}, the race starts at seven so early night for me."],
     "q": "run", "para": "compete in",
     "ask": "Which events has {s} competed in?",
     "x": ["the Brookside half marathon", "the Color Dash 5k", "the Lakeshore 10k", "the Midnight Mile",
           "the Tidewater relay", "the Granite Trail ultra", "the Harvest Hill run", "the City Bridges 15k"],
     "filler": ["Running in the cold is brutal but worth it.", "I am trying to run three times a week.",
                "My running shoes are falling apart."],
     "react": ["You run so much, that is impressive!", "I could never run that far."]},
    {"say": ["Saw Dr {x} about my shoulder today, {who} drove me there, it is just a strain apparently.",
             "Had an appointment with Dr {x} about the rash, {who} came along for moral support."],
     "q": "see Dr", "para": "get a medical check-up from",
     "ask": "Which physicians has {s} consulted about health issues?",
     "x": ["Okonkwo", "Lindqvist", "Ferreira", "Halvorsen", "Nakamura", "Brennan", "Castellanos", "Zielinski"],
     "filler": ["Doctor appointments always make me anxious.", "I should really see a doctor about my back.",
                "The waiting room at the clinic was packed."],
     "react": ["I hope the doctor helps, feel better soon!", "Glad you finally went to the doctor."]},
    {"say": ["We adopted a puppy named {x}, {who} helped us pick him at the shelter.",
             "{who} is looking after our dog {x} while we are away, I miss him already."],
     "q": "adopt the dog", "para": "bring home the pet",
     "ask": "What is the name of the pet {s} keeps?",
     "x": ["Biscuit", "Pickle", "Mochi", "Waffles", "Juniper", "Pretzel", "Nugget", "Clementine"],
     "filler": ["The dog chewed another shoe today.", "Walking the dog in the rain is not fun.",
                "Having a dog has changed my whole routine."],
     "react": ["Your dog sounds adorable, send pictures!", "Dogs are the best, I want one so badly."]},
    {"say": ["I bought {x} from the flea market, {who} haggled the price down for me.",
             "{who} and I went shopping and I came back with {x}, totally an impulse buy."],
     "q": "buy", "para": "purchase",
     "ask": "What has {s} purchased recently?",
     "x": ["a brass telescope", "a vintage typewriter", "a velvet armchair", "a cast iron skillet",
           "a record player", "a ceramic teapot", "a leather satchel", "a folding bicycle"],
     "filler": ["I really need to stop buying things I do not need.", "Shopping on weekends is a bad habit.",
                "Went shopping but came home with nothing."],
     "react": ["Great find, I love a good shopping trip!", "You always find the coolest things when shopping."]},
    {"say": ["Flew to {x} to visit {who}, the trip was short but so good for my soul.",
             "{who} and I are planning a trip to {x} in the autumn, already booked the flights."],
     "q": "travel to", "para": "take a journey abroad to",
     "ask": "Which cities has {s} journeyed to?",
     "x": ["Lisbon", "Tallinn", "Krakow", "Valencia", "Ghent", "Bergen", "Bologna", "Gdansk"],
     "filler": ["I have the travel bug again, I need a trip.", "Travel is expensive but so worth it.",
                "Airports always stress me out when I travel."],
     "react": ["That trip sounds dreamy!", "I love hearing about your travel plans."]},
    {"say": ["Signed up for a {x} class with {who}, the first lesson is on Thursday.",
             "The {x} class with {who} is harder than I thought, but I am learning so much."],
     "q": "take the class", "para": "enrol in a course of",
     "ask": "Which courses has {s} enrolled in?",
     "x": ["pottery", "salsa dancing", "woodworking", "Italian", "watercolour", "jazz piano", "bouldering",
           "photography"],
     "filler": ["Taking a class as an adult is humbling.", "I love learning something new in a class.",
                "The class schedule clashes with work sometimes."],
     "react": ["That class sounds like so much fun!", "Good for you for trying a new class."]},
]  # fmt: skip

CHAT = [
    "Honestly it has been such a crazy week.", "How are you holding up?", "I miss our long chats so much.",
    "Thanks for always being there for me.", "Work has been nonstop lately.", "Anyway, enough about me.",
    "I am so happy for you, really.", "Life gets busy, I totally get it.", "The weather has been awful here.",
    "I have been sleeping badly again.", "My family says hi by the way!", "It feels like forever since we talked.",
    "I feel like I am finally finding my rhythm.", "Sorry for the late reply!", "You always make me laugh.",
    "Let us catch up properly soon.", "I have been feeling a bit overwhelmed.", "That made my day, thank you.",
    "It is wild how fast this year is going.", "I am trying to be kinder to myself.",
    "We should plan something fun together.", "My boss finally gave me some good feedback.",
    "I have been thinking about what you said last time.", "Things are slowly getting better.",
]  # fmt: skip
# Friends come up all the time, and so do the specifics of an event: before it, after it, in replies.
FRIEND_TALK = ["{f} says hi, by the way.", "Had lunch with {f} today, we talked for hours.",
               "{f} is going through a rough patch.", "{f} and I finally caught up on the phone.",
               "I keep meaning to call {f} back.", "{f} sent me the funniest video."]  # fmt: skip
PLAIN_SAY = ["Big day with {who}: {x}. Still buzzing about it.", "{who} and I finally did it, {x}, what a day."]
ECHO = ["{x} is still on my mind.", "Keep thinking about {x}, honestly.", "{who} keeps bringing up {x}."]
ECHO_REPLY = ["Wait, {x}? Tell me everything!", "I have heard so much about {x}.", "How did {x} go in the end?"]


def _turn_text(rng: random.Random, facts: list[str], friends: list[str]) -> str:
    """Facts with three to six chatty sentences around them, often about a friend or other topics."""
    parts = facts + rng.sample(CHAT, rng.randrange(3, 7))
    if rng.random() < 0.5:
        parts.append(rng.choice(FRIEND_TALK).format(f=rng.choice(friends)))
    for _ in range(rng.randrange(3)):
        parts.append(_pick(rng, rng.choice(TOPICS), "filler"))
    rng.shuffle(parts)
    return " ".join(parts)


def _pick(rng: random.Random, topic: dict[str, object], key: str) -> str:
    """One of a topic's sentences under `key`."""
    options = topic[key]
    assert isinstance(options, list)
    return str(rng.choice(options))


def _event_question(rng: random.Random, topic: dict[str, object], speaker: str, x: str, who: str) -> Question:
    """A question about one event (evidence filled in by the caller)."""
    form = rng.choices(["when", "who", "what"], weights=[2, 2, 1])[0]
    para = rng.random() < 0.5
    verb = str(topic["para" if para else "q"])
    text = {
        "when": f"When did {speaker} {verb} {x}?",
        "who": f"Who did {speaker} {verb} {x} with?",
        "what": f"What did {speaker} {verb} with {who}?",
    }[form]
    return Question("", form + ("-para" if para else ""), text, [])


def _conversation(seed: int) -> Conversation:
    rng = random.Random(seed)
    conv = Conversation(id=f"k{seed}")
    speakers = rng.sample(SPEAKERS, 2)
    friends = rng.sample(FRIENDS, 8)
    start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(0, 120))
    days = sorted(rng.sample(range(rng.randrange(180, 300)), 20))  # 20 sessions over 6-10 months
    # Events: each speaker has four pastimes and does each four to six times with different specifics;
    # like real chat logs, a conversation keeps coming back to the same few themes.
    plan: list[tuple[int, int, list[str], tuple[dict[str, object], str, str] | None]] = []  # session, speaker
    for s_i in range(2):
        for topic in rng.sample(TOPICS, 4):
            xs = topic["x"]
            assert isinstance(xs, list)
            for x in rng.sample(xs, rng.randrange(4, 7)):
                who = rng.choice(friends)
                says = topic["say"] if rng.random() < 0.7 else PLAIN_SAY  # the topic's words, or none
                assert isinstance(says, list)
                say = str(rng.choice(says)).format(x=x, who=who)
                plan.append((rng.randrange(20), s_i, [say], (topic, x, who)))
                for _ in range(rng.randrange(2, 5)):  # the specifics again, without the event
                    side = rng.randrange(2)
                    echo = rng.choice(ECHO if side == 0 else ECHO_REPLY).format(x=x, who=rng.choice(friends))
                    plan.append((rng.randrange(20), s_i if side == 0 else 1 - s_i, [echo], None))
            for _ in range(5):  # same-topic turns without specifics, and the friend's replies
                plan.append((rng.randrange(20), s_i, [_pick(rng, topic, "filler")], None))
                plan.append((rng.randrange(20), 1 - s_i, [_pick(rng, topic, "react")], None))
    for s in range(20):
        for _ in range(rng.randrange(4, 8)):
            plan.append((s, rng.randrange(2), [], None))  # small talk only
    rng.shuffle(plan)
    # Several facts per turn: a fifth of the events share their turn with the speaker's next event.
    merged: list[tuple[int, int, list[str], list[tuple[dict[str, object], str, str]]]] = []
    for s, who_talks, facts, event in sorted(plan, key=lambda p: p[0]):
        last = merged[-1] if merged else None
        if event and last and last[3] and last[0] == s and last[1] == who_talks and rng.random() < 0.2:
            last[2].extend(facts)
            last[3].append(event)
        else:
            merged.append((s, who_talks, list(facts), [event] if event else []))
    # evidence: every turn that answers (a question's speaker, topic and specifics)
    said: dict[tuple[int, int, str], list[str]] = {}
    asked: list[tuple[Question, tuple[int, int, str]]] = []
    for n, (s, who_talks, facts, events) in enumerate(merged):
        text = f"{speakers[who_talks]}: {_turn_text(rng, facts, friends)}"
        turn = Turn(id=f"{conv.id}-t{n}", text=text, at=start + timedelta(days=days[s], minutes=n))
        conv.turns.append(turn)
        for topic, x, who in events:
            t_i = TOPICS.index(topic)
            for key in ((who_talks, t_i, ""), (who_talks, t_i, "x:" + x), (who_talks, t_i, "who:" + who)):
                said.setdefault(key, []).append(turn.id)
            q = _event_question(rng, topic, speakers[who_talks], x, who)
            asked.append((q, (who_talks, t_i, ("who:" + who) if q.kind.startswith("what") else "x:" + x)))
    for s_i, speaker in enumerate(speakers):  # about a topic as a whole, paraphrased: half the topics
        for t_i, topic in enumerate(TOPICS):
            if (s_i, t_i, "") in said and rng.random() < 0.5:
                asked.append((Question("", "topic-para", str(topic["ask"]).format(s=speaker), []), (s_i, t_i, "")))
    for q, key in asked:
        conv.questions.append(Question(f"{conv.id}-q{len(conv.questions)}", q.kind, q.text, said[key]))
    return conv


def conversations(split: str, n: int = 6) -> list[Conversation]:
    """`n` conversations of the `dev` or `test` split (disjoint seeds)."""
    base = {"dev": 3000, "test": 4000}[split]
    return [_conversation(base + i) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--show", type=int, default=0, help="print this many questions with their evidence")
    args = parser.parse_args()
    convs = conversations(args.split, args.n)
    kinds: dict[str, int] = {}
    for c in convs:
        for q in c.questions:
            kinds[q.kind] = kinds.get(q.kind, 0) + 1
    turns = [t for c in convs for t in c.turns]
    words = sum(len(t.text.split()) for t in turns) / len(turns)
    print(f"{args.split}: {len(convs)} conversations, {len(turns)} turns ({words:.0f} words each), questions {kinds}")
    by_id = {t.id: t for t in turns}
    for q in [q for c in convs for q in c.questions][: args.show]:
        print(f"[{q.kind}] {q.text}\n    -> " + " | ".join(by_id[e].text for e in q.evidence))


if __name__ == "__main__":
    main()
