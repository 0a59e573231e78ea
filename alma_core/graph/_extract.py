"""`EntityExtractor`: entities and relationships from text by rules, offline (no model, no download).

    entities, relationships = EntityExtractor().extract("Alice from Acme Corp reviewed the PR that Bob submitted.")
    # Alice (person), Acme Corp (organization), PR (concept), Bob (person);
    # alice WORKS_FOR acme_corp, alice REVIEWED pr, bob CREATED pr

Mentions are proper names (runs of capitalised words, acronyms, identifiers such as TCK-1042), the
domain schema's entity types ("the checkout bug", "ticket TCK-1042") and the noun phrase after a
relation verb ("reviewed the PR"). Types come from name cues (Corp, Inc; Dr; a list of common first
names and places) and from the relation that links them. Relationships come from the words between
two mentions of one sentence ("works for", "is based in", "reports to", ", who"...). What it misses,
an LLM extractor (`LLMEntityExtractor`) catches at the cost of a model call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ._models import Entity, Relationship, entity_id

__all__ = ["EntityExtractor", "Mention"]


def _words(text: str) -> list[str]:
    return text.split()


_TOKEN = re.compile(r"[A-Za-z0-9#/@][\w'\u2019./#@&+-]*[\w#+]|[A-Za-z0-9#]|[,;:()\"“”]")
_POSSESSIVE = re.compile(r"(\w)['\u2019]s\b")
_SENTENCE = re.compile(
    r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bMrs\.)(?<!\bProf\.)(?<!\bSt\.)(?<=[.!?])\s+(?=[A-Z0-9\"“])|\n+"
)
_ORG_SUFFIX = frozenset(
    _words(
        "corp corporation inc ltd llc gmbh plc ag co company labs lab group bank university institute foundation "
        "systems technologies software partners agency studio studios ventures capital holdings airlines"
    )
)
_GROUP_NOUNS = frozenset(_words("team squad department group division service project app library repo"))
_NAME_JOINERS = ("of", "&", "de", "van", "von", "la")  # "Bank of America"
_TITLES = frozenset(_words("dr mr mrs ms prof professor sir madam customer client colleague"))
_ROLES = frozenset(_words("ceo cto cfo coo cio vp"))  # "the CTO of Halvard": a role, not a name
_FIRST_NAMES = frozenset(
    _words(
        "aaron adam alan albert alex alice amelia amy ana andrew anna arjun ben bob carlos carol charlie chen chloe "
        "claire dan daniel dave david diana diego eli elena emily emma eric eva fatima frank george grace hana hannah "
        "helena henry ian isabel jack james jane jason jin john jose julia karen kate kevin laura leo liam lily lin "
        "lucas lucy luis maria mark marta mary mei mia michael mike nadia nina noah olivia omar oscar paul pedro peter "
        "priya rachel raj rosa ryan sam sara sarah sofia sophie tom victor wei will yuki zoe"
    )
)
_PLACES = frozenset(
    _words(
        "amsterdam athens austin bangalore barcelona beijing berlin boston brazil brussels canada chicago china "
        "copenhagen denver dublin england europe france germany hamburg india ireland italy japan kyoto lagos lisbon "
        "london madrid mexico milan montreal mumbai munich nairobi paris portugal prague rome seattle seoul shanghai "
        "singapore spain stockholm sydney tokyo toronto vancouver vienna warsaw zurich"
    )
)
# Capitalised only because they open a sentence (or are function words): never a name on their own.
_COMMON = frozenset(
    _words(
        "a after all also always an and any as at avoid be because before both but by call can check could did do "
        "does each every first for from had has have he her here his how i if in into is it its just last let make "
        "many may more most my never next no not note now of on once one only or our please prefer remember run "
        "set she should since so some still that the their them then there these they this those to today "
        "tomorrow try use was we were what when where which while who why will with yesterday you your monday "
        "tuesday wednesday thursday friday saturday sunday january february march april may june july august "
        "september october november december add added fix fixed test tests tested deploy deployed retry wait ok "
        "yes"
    )
)
_DETERMINERS = frozenset(_words("the a an this that our their his her its my your"))
_STOP = _COMMON | frozenset(
    _words(
        "is are was were be been being to of in on at for from by with and or but that which who whom whose it its as"
    )
)

# ", a data scientist at": describes the previous mention (an appositive), not the sentence's subject.
_APPOSITIVE = (
    r"(?:is |was )?(?:an? |the )?(?:[\w-]+ ){0,2}(?:engineer|developer|manager|designer|analyst|scientist|lead|"
    r"director|ceo|cto|cfo|coo|vp|head|professor|founder|researcher|consultant|intern|architect|admin|tester|"
    r"recruiter) (?:at|for|of|with)"
)
# (relation type, pattern over the words between two mentions, reversed?). First match wins.
_PATTERNS: list[tuple[str, str, bool]] = [
    ("REPORTS_TO", r"(?:reports|reported|reporting) (?:directly )?to", False),
    ("MANAGES", r"(?:manages|managed|leads|led|heads|headed|runs|ran|supervises)", False),
    (
        "WORKS_FOR",
        r"(?:works|work|worked|working|is employed|was employed|interns|consults)"
        r" (?:(?:as|at|for) )?(?:an? [\w-]+(?: [\w-]+)? )?(?:for|at|with)",
        False,
    ),
    ("WORKS_FOR", r"(?:joined|has joined|will join|is joining|was hired by|is hired by)", False),
    ("WORKS_FOR", _APPOSITIVE, False),
    ("WORKS_FOR", r"(?:from|of|at)", False),
    (
        "LIVES_IN",
        r"(?:lives|lived|living|resides|resided|moved|relocated|relocates|is moving)"
        r" (?:back )?(?:in|to)",
        False,
    ),
    ("LOCATED_IN", r"(?:is |are |was )?(?:located|based|headquartered|hosted|deployed|running) (?:in|on)", False),
    ("LOCATED_IN", r"(?:has|have|opened) (?:an? |its |their )?(?:office|offices|headquarters|hq) in", False),
    (
        "PART_OF",
        r"(?:is |are )?(?:part of|a member of|a module of|a component of|a subsidiary of|belongs to|"
        r"belong to)",
        False,
    ),
    ("DEPENDS_ON", r"(?:depends on|depend on|relies on|rely on|requires|require|needs|calls|imports)", False),
    ("USES", r"(?:uses|used|use|using|switched to|migrated to|moved to|prefers|chose|adopted)", False),
    (
        "CREATED",
        r"(?:wrote|written|authored|created|built|founded|designed|submitted|opened|filed|reported|"
        r"introduced|developed)",
        False,
    ),
    (
        "CREATED",
        r"(?:was |is )?(?:written|authored|created|built|founded|designed|submitted|opened|filed|"
        r"developed) by",
        True,
    ),
    ("REVIEWED", r"(?:reviewed|approved|merged|tested|verified|audited)", False),
    ("FIXED", r"(?:fixed|resolved|closed|patched)", False),
    ("OWNS", r"(?:owns|maintains|maintained|acquired|bought)", False),
    ("OWNS", r"(?:is |was )?(?:owned|maintained|acquired|bought) by", True),
    ("KNOWS", r"(?:knows|met|married|mentors|mentored|is friends with|is married to|partnered with)", False),
    ("ASSIGNED_TO", r"(?:is |was )?assigned to", False),
    ("ASSIGNED_TO", r"(?:took|picked up|owns)", True),
]
_COMPILED = [(kind, re.compile(rf"^(?:{p})(?: (?:the|a|an|its|their|his|her))?$"), rev) for kind, p, rev in _PATTERNS]
_RELATIVE_VERBS = [(kind, re.compile(rf"^(?:{p})$"), rev) for kind, p, rev in _PATTERNS if not rev and "from|" not in p]
_VERBS = [re.compile(rf"^(?:{p})$") for _, p, _ in _PATTERNS if "from|" not in p]  # any relation verb
_TYPES_BY_RELATION = {
    "WORKS_FOR": ("person", "organization"), "REPORTS_TO": ("person", "person"), "LIVES_IN": ("person", "location"),
    "LOCATED_IN": (None, "location"), "KNOWS": ("person", "person"), "MANAGES": ("person", None),
}  # fmt: skip


@dataclass
class Mention:
    """A span of tokens in one sentence that names an entity."""

    start: int
    end: int  # exclusive
    name: str
    entity_type: str
    proper: bool = True


def _is_cap(token: str) -> bool:
    return token[:1].isupper() or (token[:1].isdigit() and any(c.isalpha() for c in token))


def _is_identifier(token: str) -> bool:
    """TCK-1042, #812, v2.3, /api/login, snake_case or CamelCase code names."""
    return (
        bool(re.search(r"\d", token) and re.search(r"[A-Za-z#]", token))
        or token.startswith(("#", "/"))
        or ("_" in token.strip("_") or bool(re.match(r"^[a-z]+[A-Z]\w*$", token)))
    )


class EntityExtractor:
    """Rule-based extraction of typed entities and relationships (offline, deterministic, fast).

    `entity_types`: the domain schema's entity type names (e.g. `schema.entity_types`), recognised in
    text as noun phrases ("the checkout bug") and before identifiers ("ticket TCK-1042")."""

    def __init__(self, entity_types: Iterable[object] = ()) -> None:
        names = [getattr(t, "name", t) for t in entity_types]
        self.entity_types: dict[str, str] = {}
        for name in names:
            words = str(name).lower().split("_")
            self.entity_types[" ".join(words)] = str(name)
            self.entity_types.setdefault(words[-1], str(name))  # api_endpoint: "endpoint" too

    # ---- public -------------------------------------------------------------------------------------

    def extract(self, text: str) -> tuple[list[Entity], list[Relationship]]:
        """The entities and relationships `text` states (entities deduplicated by id, first mention's name)."""
        entities: dict[str, Entity] = {}
        relationships: dict[tuple[str, str, str], Relationship] = {}
        for sentence in _SENTENCE.split(text or ""):
            tokens = _TOKEN.findall(_POSSESSIVE.sub(r"\1", sentence))  # "Kwame's boss": Kwame
            mentions = self._mentions(tokens)
            for kind, source, target in self._relations(tokens, mentions):
                src, dst = entity_id(source.name), entity_id(target.name)
                if src and dst and src != dst:
                    relationships.setdefault((src, kind, dst), Relationship(source_id=src, target_id=dst,
                                                                            relation_type=kind))  # fmt: skip
            for mention in mentions:
                key = entity_id(mention.name)
                if not key:
                    continue
                if key not in entities or entities[key].entity_type == "concept":
                    entities[key] = Entity(id=key, name=mention.name, entity_type=mention.entity_type)
        return list(entities.values()), list(relationships.values())

    def entity_ids(self, text: str) -> list[str]:
        """The ids of the entities `text` mentions (what a query is expanded from)."""
        return [e.id for e in self.extract(text)[0]]

    # ---- mentions -----------------------------------------------------------------------------------

    def _mentions(self, tokens: list[str]) -> list[Mention]:
        found: list[Mention] = []
        i = 0
        while i < len(tokens):
            mention = self._domain_mention(tokens, i) or self._proper_mention(tokens, i)
            if mention is None:
                i += 1
                continue
            found.append(mention)
            i = mention.end
        return found

    def _domain_mention(self, tokens: list[str], i: int) -> Mention | None:
        """ "ticket TCK-1042" -> TCK-1042 (ticket); "the checkout bug" -> checkout bug (bug)."""
        low = tokens[i].lower()
        for words in (2, 1):
            phrase = " ".join(t.lower() for t in tokens[i : i + words])
            kind = self.entity_types.get(phrase)
            nxt = i + words
            if kind and nxt < len(tokens) and _is_identifier(tokens[nxt]):
                return Mention(i, nxt + 1, tokens[nxt], kind)
        if low in _DETERMINERS:
            span: list[str] = []
            for k, t in enumerate(tokens[i + 1 : i + 4], start=i + 1):
                if not t[:1].isalpha() or t.lower() in _STOP or (_is_cap(t) and not span) or self._verb_at(tokens, k):
                    break
                span.append(t)
            after = i + 1 + len(span)
            if span and after < len(tokens) and _is_identifier(tokens[after]) and span[-1].lower() in self.entity_types:
                return Mention(after, after + 1, tokens[after], self.entity_types[span[-1].lower()])  # "the bug #9"
            if span and (self._verb_at(tokens, i, before=True) or self._verb_at(tokens, after)):
                kind = self.entity_types.get(span[-1].lower(), "concept")
                return Mention(i + 1, i + 1 + len(span), " ".join(span), kind, proper=False)
        if low in _DETERMINERS:
            for size in (3, 2):
                span = tokens[i + 1 : i + 1 + size]
                if len(span) == size and all(t[:1].isalpha() and t.lower() not in _STOP for t in span):
                    kind = self.entity_types.get(span[-1].lower()) or self.entity_types.get(
                        " ".join(t.lower() for t in span[-2:])
                    )
                    after = i + 1 + size
                    if kind and after < len(tokens) and _is_identifier(tokens[after]):
                        return Mention(after, after + 1, tokens[after], kind)  # "the API endpoint /api/login"
                    if kind:
                        return Mention(i + 1, after, " ".join(span), kind, proper=False)
        return None

    @staticmethod
    def _verb_at(tokens: list[str], i: int, before: bool = False) -> bool:
        """Whether a relation verb ends just before token `i` ("reviewed | the PR") or starts at it."""
        for size in (1, 2, 3):
            span = tokens[i - size : i] if before else tokens[i : i + size]
            if len(span) == size and (not before or i - size >= 1):
                words = " ".join(t.lower() for t in span)
                if any(pattern.match(words) for pattern in _VERBS):
                    return True
        return False

    def _proper_mention(self, tokens: list[str], i: int) -> Mention | None:
        token = tokens[i]
        titled = token.lower() in _TITLES and i + 1 < len(tokens) and _is_cap(tokens[i + 1])
        acronym = token.isupper() and len(token) > 1
        plain = not (_is_cap(token) or _is_identifier(token)) or (token.lower() in _COMMON and not acronym)
        if (plain and not titled) or token.lower() in _ROLES:
            return None
        j = i + 1
        while j < len(tokens):
            nxt = tokens[j]
            known = nxt.lower() in _COMMON and not (len(nxt) > 1 and nxt.isupper())
            if _is_cap(nxt) and not known and nxt.lower() not in _ROLES and nxt[:1].isalnum():
                j += 1
            elif nxt.lower() in _NAME_JOINERS and j + 1 < len(tokens) and _is_cap(tokens[j + 1]):
                j += 2
            else:
                break
        if j < len(tokens) and tokens[j].lower() in _GROUP_NOUNS:  # "the Platform team"
            j += 1
        words = tokens[i:j]
        if len(words) > 1 and words[0].lower() in _TITLES:  # "Dr. Chen" is Chen
            return Mention(i, j, " ".join(words[1:]), "person")
        if i == 0 and len(words) == 1 and (token.lower().endswith(("ing", "ed", "ly")) or token.lower() in _COMMON):
            return None
        if len(words) == 1 and token.lower() in _TITLES:
            return None
        return Mention(i, j, " ".join(words), self._type_of(words))

    def _type_of(self, words: list[str]) -> str:
        low = [w.lower().rstrip(".") for w in words]
        if low[-1] in _ORG_SUFFIX or (len(low) > 1 and low[-1] in ("team", "squad", "department", "division")):
            return "organization"
        if low[0] in _TITLES or (low[0] in _FIRST_NAMES and len(low) <= 3):
            return "person"
        if len(low) == 1 and low[0] in _PLACES:
            return "location"
        if len(low) == 1 and low[0] in self.entity_types:
            return self.entity_types[low[0]]
        return "concept"

    # ---- relations ----------------------------------------------------------------------------------

    def _relations(self, tokens: list[str], mentions: list[Mention]) -> list[tuple[str, Mention, Mention]]:
        """Typed edges between consecutive mentions, from the words between them. A mention attached to the
        previous one as a modifier ("Alice from Acme", "Bob, who works for X") keeps the subject."""
        found: list[tuple[str, Mention, Mention]] = []
        subjects: list[Mention] = []  # "Leo and Mia work at X": both
        for k, mention in enumerate(mentions):
            if k == 0:
                subjects = [mention]
                continue
            prev = mentions[k - 1]
            between = " ".join(t.lower() for t in tokens[prev.end : mention.start] if t not in ('"', "“", "”"))
            between = re.sub(r"\s+,", ",", between).strip()
            match = self._match(between, prev, mention)
            if match is None:
                match = self._relative_clause(tokens, between, prev, mention)
                if match is None:
                    if between in ("and", ",", "or") or not between:
                        if prev is subjects[-1]:
                            subjects.append(mention)
                        continue  # a list: the subject carries over
                    subjects = [mention]
                    continue
            kind, reverse, modifier = match
            for source in [prev] if modifier else subjects:
                src, dst = (mention, source) if reverse else (source, mention)
                self._retype(kind, src, dst)
                found.append((kind, src, dst))
            if not modifier and between.startswith(","):
                subjects = [mention]
        return found

    def _match(self, between: str, prev: Mention, cur: Mention) -> tuple[str, bool, bool] | None:
        """(type, reversed, modifier) for the words between two mentions; a modifier ("from", ", who ...")
        attaches to the previous mention instead of the sentence's subject."""
        core = between.lstrip(", ")
        clause = re.match(r"^(?:who|which|that) ", core)
        core = core[clause.end() :] if clause else core
        if len(core.split()) > 8:
            return None
        for kind, pattern, reverse in _COMPILED:
            if pattern.match(core):
                if core in ("from", "of", "at") and not self._org_like(prev, cur):
                    return None  # "the PR of the team": not employment
                appositive = pattern.pattern.startswith(f"^(?:{_APPOSITIVE})")
                modifier = core in ("from", "of", "at") or bool(clause) or appositive
                return kind, reverse, modifier
        return None

    @staticmethod
    def _org_like(prev: Mention, cur: Mention) -> bool:
        return prev.entity_type == "person" and cur.entity_type in ("organization", "concept") and cur.proper

    @staticmethod
    def _relative_clause(tokens: list[str], between: str, prev: Mention, cur: Mention) -> tuple[str, bool, bool] | None:
        """ "the PR that Bob submitted" -> Bob CREATED PR."""
        if between not in ("that", "which", "the", ""):
            return None
        after = " ".join(t.lower() for t in tokens[cur.end : cur.end + 2])
        for kind, pattern, _ in _RELATIVE_VERBS:
            for size in (2, 1):
                words = " ".join(after.split()[:size])
                if between in ("that", "which") and words and pattern.match(words):
                    return kind, True, True
        return None

    @staticmethod
    def _retype(kind: str, src: Mention, dst: Mention) -> None:
        want = _TYPES_BY_RELATION.get(kind)
        if want:
            for mention, kind_wanted in zip((src, dst), want, strict=True):
                if kind_wanted and mention.entity_type == "concept" and mention.proper:
                    mention.entity_type = kind_wanted
