# ruff: noqa: E501  (a table of labels: one sentence per row)
"""50 sentences labelled by hand for the rule-based extractor, written before it was run on them.

Guideline: label every named entity (person, organization, location, named product or tool, identifier
such as a ticket id) and every noun phrase that is an argument of a relation of the documented types
(docs/graph.md: WORKS_FOR, LIVES_IN, LOCATED_IN, REPORTS_TO, MANAGES, PART_OF, DEPENDS_ON, USES,
CREATED, REVIEWED, FIXED, OWNS, KNOWS, ASSIGNED_TO). Entities are keyed by id (`entity_id(name)`),
with a type among person, organization, location, concept or a domain type; relations are
(source id, type, target id). Dates, numbers and generic nouns are not entities.
"""

from __future__ import annotations

P, ORG, L, C = "person", "organization", "location", "concept"

# (sentence, {entity id: type}, {(source, TYPE, target)})
LABELS: list[tuple[str, dict[str, str], set[tuple[str, str, str]]]] = [
    # people and organizations
    ("Alice from Acme Corp reviewed the PR that Bob submitted.",
     {"alice": P, "acme_corp": ORG, "pr": C, "bob": P},
     {("alice", "WORKS_FOR", "acme_corp"), ("alice", "REVIEWED", "pr"), ("bob", "CREATED", "pr")}),
    ("Maria works for Globex.", {"maria": P, "globex": ORG}, {("maria", "WORKS_FOR", "globex")}),
    ("Kenji joined Initech in March.", {"kenji": P, "initech": ORG}, {("kenji", "WORKS_FOR", "initech")}),
    ("Priya, a data scientist at Hooli, mentors Sam.", {"priya": P, "hooli": ORG, "sam": P},
     {("priya", "WORKS_FOR", "hooli"), ("priya", "KNOWS", "sam")}),
    ("Dr. Chen reports to Maria Lopez.", {"chen": P, "maria_lopez": P}, {("chen", "REPORTS_TO", "maria_lopez")}),
    ("Omar lives in Lisbon.", {"omar": P, "lisbon": L}, {("omar", "LIVES_IN", "lisbon")}),
    ("Sara moved to Berlin last year.", {"sara": P, "berlin": L}, {("sara", "LIVES_IN", "berlin")}),
    ("Umbrella Corp is headquartered in Chicago.", {"umbrella_corp": ORG, "chicago": L},
     {("umbrella_corp", "LOCATED_IN", "chicago")}),
    ("Wayne Enterprises acquired Stark Industries.", {"wayne_enterprises": ORG, "stark_industries": ORG},
     {("wayne_enterprises", "OWNS", "stark_industries")}),
    ("Nadia manages the Platform team.", {"nadia": P, "platform_team": ORG}, {("nadia", "MANAGES", "platform_team")}),
    ("Leo and Mia work at Northwind Traders.", {"leo": P, "mia": P, "northwind_traders": ORG},
     {("leo", "WORKS_FOR", "northwind_traders"), ("mia", "WORKS_FOR", "northwind_traders")}),
    ("Jonas Berg, who works for Vandelay Industries, met Elaine in Paris.",
     {"jonas_berg": P, "vandelay_industries": ORG, "elaine": P, "paris": L},
     {("jonas_berg", "WORKS_FOR", "vandelay_industries"), ("jonas_berg", "KNOWS", "elaine")}),
    ("The Seattle office of Contoso opened in 2019.", {"seattle": L, "contoso": ORG}, {("contoso", "LOCATED_IN", "seattle")}),
    ("Grace was hired by Tyrell Labs.", {"grace": P, "tyrell_labs": ORG}, {("grace", "WORKS_FOR", "tyrell_labs")}),
    ("Hannah Schmidt founded Quillon.", {"hannah_schmidt": P, "quillon": ORG}, {("hannah_schmidt", "CREATED", "quillon")}),
    # coding
    ("The checkout service depends on Redis.", {"checkout_service": C, "redis": C},
     {("checkout_service", "DEPENDS_ON", "redis")}),
    ("Helena uses Playwright for end-to-end tests.", {"helena": P, "playwright": C}, {("helena", "USES", "playwright")}),
    ("Victor fixed bug #812 in the payments API.", {"victor": P, "812": "bug", "payments_api": C},
     {("victor", "FIXED", "812")}),
    ("The login form uses data-testid selectors.", {"login_form": C, "data_testid_selectors": C},
     {("login_form", "USES", "data_testid_selectors")}),
    ("Ticket TCK-1042 is assigned to Bob.", {"tck_1042": "ticket", "bob": P}, {("tck_1042", "ASSIGNED_TO", "bob")}),
    ("Eric wrote the migration script for PostgreSQL.", {"eric": P, "migration_script": C, "postgresql": C},
     {("eric", "CREATED", "migration_script")}),
    ("The auth module is part of the Gateway service.", {"auth_module": C, "gateway_service": C},
     {("auth_module", "PART_OF", "gateway_service")}),
    ("Our CI pipeline runs on GitHub Actions.", {"ci_pipeline": C, "github_actions": C},
     {("ci_pipeline", "LOCATED_IN", "github_actions")}),
    ("Use pytest-xdist to run the suite in parallel.", {"pytest_xdist": C}, set()),
    ("Lucas reviewed the pull request for the search index.", {"lucas": P, "pull_request": C},
     {("lucas", "REVIEWED", "pull_request")}),
    ("The API endpoint /api/login requires a JWT.", {"api_login": "api_endpoint", "jwt": C}, set()),
    ("Kubernetes schedules the worker pods.", {"kubernetes": C}, set()),
    ("The billing worker calls Stripe.", {"billing_worker": C, "stripe": ORG}, {("billing_worker", "DEPENDS_ON", "stripe")}),
    ("Diego maintains the Terraform modules.", {"diego": P, "terraform_modules": C},
     {("diego", "OWNS", "terraform_modules")}),
    ("The frontend switched to Vite.", {"frontend": C, "vite": C}, {("frontend", "USES", "vite")}),
    # support, sales, research
    ("Customer Ana Souza opened ticket SUP-77 about refunds.", {"ana_souza": P, "sup_77": "ticket"},
     {("ana_souza", "CREATED", "sup_77")}),
    ("Zoe closed ticket SUP-78.", {"zoe": P, "sup_78": "ticket"}, {("zoe", "FIXED", "sup_78")}),
    ("The lead from Brightmoor prefers email.", {"brightmoor": ORG}, set()),
    ("Raj Patel is the CTO of Halvard.", {"raj_patel": P, "halvard": ORG}, {("raj_patel", "WORKS_FOR", "halvard")}),
    ("The paper by Lena Strauss cites Arne Holm.", {"lena_strauss": P, "arne_holm": P}, set()),
    ("Professor Okafor leads the Vision Lab at Cork University.",
     {"okafor": P, "vision_lab": ORG, "cork_university": ORG},
     {("okafor", "MANAGES", "vision_lab")}),
    ("Kestrel & Finch is based in Dublin.", {"kestrel_finch": ORG, "dublin": L}, {("kestrel_finch", "LOCATED_IN", "dublin")}),
    ("Tomasz prefers Slack over email.", {"tomasz": P, "slack": C}, {("tomasz", "USES", "slack")}),
    ("Ingrid Nilsson relocated to Stockholm.", {"ingrid_nilsson": P, "stockholm": L},
     {("ingrid_nilsson", "LIVES_IN", "stockholm")}),
    ("Mateo is a member of the Design Guild.", {"mateo": P, "design_guild": ORG}, {("mateo", "PART_OF", "design_guild")}),
    # no entities, or tricky
    ("Always wait for the network to be idle before asserting.", {}, set()),
    ("It rained the whole afternoon so I stayed in.", {}, set()),
    ("Retry the request twice before giving up.", {}, set()),
    ("Never use sleep(5000) for waits.", {}, set()),
    ("When the cache is cold, warm it first.", {}, set()),
    ("Bob.", {"bob": P}, set()),
    ("Yesterday Freya met Hugo at the station.", {"freya": P, "hugo": P}, {("freya", "KNOWS", "hugo")}),
    ("After lunch, Camille called Dmitri.", {"camille": P, "dmitri": P}, set()),
    ("The report was written by Kwame.", {"report": C, "kwame": P}, {("kwame", "CREATED", "report")}),
    ("Sanna works as an engineer for Norvale in Graz.", {"sanna": P, "norvale": ORG, "graz": L},
     {("sanna", "WORKS_FOR", "norvale")}),
]  # fmt: skip
