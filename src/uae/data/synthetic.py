"""The embedded quickstart dataset: synthetic QA in which similarity and utility disagree.

This dataset is **synthetic and built on purpose** to show the failure that UAE addresses. It
is not a benchmark of natural text, and numbers measured on it say nothing about real corpora.

Construction
------------
Fictional entities of five kinds (towns, scientists, companies, rivers, ships) get names
built from random syllables, so no pretrained model can know anything about them. Each entity
has 4-5 *facts* by default (relation, value): founding year, founder, population, birthplace,
length, home port, ... Every value is a year, a number or a made-up name, and every value is
unique in the whole corpus (no two facts share a value, no name word is reused, no name equals
a template word), which the generator checks: each value occurs in exactly one passage.

For each fact the corpus holds:

- one **answer passage** that states the value. Most of its templates describe the event
  ("shepherds put up the first stone huts at X in 1742") instead of naming the relation
  ("when was X founded"), so they share little more than the entity with the question; about
  one template in five does use the question's words ("X was founded in 1742 by ..."), so
  the answer passage sometimes also looks like the question, as it does in real corpora;
- one or two **distractor passages** about the same entity and relation that paraphrase the
  question heavily ("the founding of X is a matter of debate; nobody knows when X was
  founded") but never contain the value. Some mention an unrelated year (a fire, a refit),
  so "has a number" alone does not separate them from answer passages.

Each entity also has 1-3 background passages, and the entity's other facts give further
same-entity passages. Sentences about the place, the company or the ship (shared by answer,
distractor and background passages, some of them hedging on purpose) are mixed in at random
positions, so that length (15-45 words), word order or a fixed phrase is not a shortcut.

A similarity retriever therefore tends to rank a distractor first: it looks most like the
question (all-MiniLM-L6-v2 puts the answer passage first for about a fifth of the questions,
BM25 for fewer still; nearly all of their misses are passages about the right entity). A
language model scoring the gold answer prefers the answer passage: only it makes the answer
likely (the Dirichlet teacher, given the gold answer, ranks it first among MiniLM's top 16
every time). The regularity a student can learn from utilities is real and general: for
"when was X founded" the passage that narrates a settlement and carries a year helps, the
passage that restates the question does not.

Layout
------
Retrieval is collection-wide (``doc_id = None``). Every passage has its entity's name as
title, as in Wikipedia-derived corpora: this keeps the entity cue equal across all passages
of an entity (so ranking is decided by content, not by whether the name happens to be in the
text) and lets a reader see which entity a passage is about. Queries are split by entity
(about 60% train, 15% dev, 25% test; no entity in two splits). Qrels give grade 1 to the one
answer passage of each question. Ids are ``p00000`` and ``q00000``, assigned after a shuffle,
so they reveal nothing about the construction. Same seed, same bytes.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from uae.data.beir import write_dataset
from uae.data.schema import Corpus, Dataset, Passage, Qrels, Query

QUICKSTART_NAME = "uae-quickstart"
"""Name of the dataset that :func:`make_quickstart_dataset` builds."""

MIN_WORDS = 15
MAX_WORDS = 45

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Relation:
    """Templates of one relation; ``{e}`` is the entity, ``{v}`` the value, ``{d}`` a decoy year."""

    name: str
    value: str
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    distractors: tuple[str, ...]


@dataclass(frozen=True)
class _Kind:
    """An entity kind: how names look, its relations, background and filler sentences."""

    name: str
    relations: tuple[_Relation, ...]
    background: tuple[str, ...]
    fillers: tuple[str, ...]


@dataclass(frozen=True)
class _Fact:
    entity: str
    kind: _Kind
    relation: _Relation
    value: str


@dataclass(frozen=True)
class _Draft:
    """A passage before ids are assigned; ``fact`` is set for answer passages only."""

    entity: str
    text: str
    fact: _Fact | None = None


# --------------------------------------------------------------------------- templates

_TOWN = _Kind(
    name="town",
    relations=(
        _Relation(
            "founded", "year",
            ("When was {e} founded?", "In what year was the town of {e} established?", "What is the founding year of {e}?"),
            (
                "Shepherds from the southern passes put up the first stone huts at {e} in {v}.",
                "In {v} a handful of river traders settled on the bend where the town now stands and built a wooden chapel.",
                "The oldest parish register of {e} begins in {v}, when its first families arrived to farm the valley.",
                "Its first houses went up in {v}, raised by miners who had followed a silver vein down from the ridge.",
                "{e} was founded in {v} by shepherds who had driven their flocks over the southern passes.",
            ),
            (
                "The founding of {e} is a matter of debate, and historians still disagree about when the town of {e} was founded.",
                "Nobody knows exactly when {e} was established; the founding date of the town was lost with its early records.",
                "Questions about the founding of {e} come up often. The year the town was founded is not given in any surviving charter.",
                "A fire in {d} destroyed the archive of {e}, so the year in which the town was founded can no longer be established.",
            ),
        ),
        _Relation(
            "founder", "person",
            ("Who founded {e}?", "Who was the founder of {e}?", "Which person is credited with founding the town of {e}?"),
            (
                "{v}, a cattle dealer from the coast, drew up the first street plan and sold the plots around the square.",
                "The statue in the square of {e} shows {v}, the land surveyor who bought the valley and invited settlers to build there.",
                "Settlers came to {e} at the invitation of {v}, who owned the mill rights and laid out the first lanes.",
                "The town was founded by {v}, a land surveyor who bought the valley and invited settlers to build there.",
                "{v} founded the settlement on marshland bought from the crown, drained it and divided it into farms.",
            ),
            (
                "Who founded {e} is still disputed, and several families claim that an ancestor was the true founder of the town.",
                "The founder of {e} is not named in the town chronicle, which only says that {e} was founded by a traveller.",
                "Schoolchildren in {e} learn a legend about the founding of the town, but the real founder of {e} remains unknown.",
            ),
        ),
        _Relation(
            "population", "population",
            ("What is the population of {e}?", "How many people live in {e}?", "How many inhabitants does {e} have?"),
            (
                "The last census counted {v} residents in {e}, most of them working in the tanneries or on the farms nearby.",
                "{v} people are registered at the town hall, a figure that has grown slowly since the railway arrived.",
                "On an ordinary weekday {v} residents fill the lanes, shops and workshops of {e}.",
                "Registered residents: {v}, according to the yearly council report on housing and schools.",
            ),
            (
                "The population of {e} has changed many times, and how many people live in {e} today is a common question from visitors.",
                "Estimates of how many inhabitants {e} has vary widely, because the town has never kept a careful register of its people.",
                "In {d} a fever swept through {e}, and the number of people living in the town has been debated ever since.",
            ),
        ),
        _Relation(
            "elevation", "elevation",
            ("At what elevation does {e} lie?", "How high above sea level is {e}?", "What is the altitude of {e}?"),
            (
                "Walkers climbing to {e} reach the square {v} metres up, where the air stays cool even in summer.",
                "The survey marker outside the church of {e} reads {v} metres.",
                "At {v} metres, {e} sits on a shelf of rock above the tree line of the valley.",
                "Snow lies late in {e}, which is perched {v} metres up on the western flank of the range.",
                "{e} lies {v} metres above sea level, on a shelf of rock above the tree line.",
            ),
            (
                "The elevation of {e} is often misreported, and guidebooks disagree about how high above sea level the town of {e} lies.",
                "Visitors often ask about the altitude of {e}; how high the town sits above sea level was shown on a sign that is now gone.",
                "{e} lies high above sea level, and the altitude of {e} makes the climb from the valley slow for carts and walkers.",
            ),
        ),
        _Relation(
            "river", "name",
            ("On which river does {e} lie?", "What river flows through {e}?", "Which river runs through the town of {e}?"),
            (
                "Barges loaded with timber still pass under the old stone bridge of {e} on their way down the {v}.",
                "The {v} floods the lower streets every few springs, leaving silt in the cellars of {e}.",
                "Fishermen of {e} set their nets in the {v} each autumn when the eels move downstream.",
                "The river {v} bends past the church and the market hall, turning the mills that line its banks.",
                "The river that flows through {e} is the {v}, which floods the lower streets every few springs.",
            ),
            (
                "Which river flows through {e} is a question that confuses visitors, since several rivers run near the town of {e}.",
                "The river that runs through {e} has had many names, and old maps disagree about which river passes the town.",
                "{e} lies on a river, and the river through {e} gives the town its water, its fish and its frequent floods.",
            ),
        ),
    ),
    background=(
        "{e} is a quiet town of narrow lanes and slate roofs in the northern hills.",
        "The weekly market of {e} draws farmers, potters and cheese makers from the whole valley.",
        "Travellers remember {e} for its arcaded square and the bells of its crooked church tower.",
        "Tanning, weaving and dairy farming have shaped the economy of {e} for generations.",
    ),
    fillers=(
        "The surrounding hills are covered in pine and heather.",
        "Its bakeries are known for rye bread and honey cakes.",
        "Visitors to {e} often stop at the old coaching inn.",
        "Local historians argue about many details of its past.",
        "Much of its early history is hard to pin down.",
        "A narrow road winds up to it from the main valley.",
        "The town hall keeps a small museum of tools and costumes.",
        "Winters there are long, and the summers short and bright.",
    ),
)

_SCIENTIST = _Kind(
    name="scientist",
    relations=(
        _Relation(
            "born", "year",
            ("When was {e} born?", "In what year was {e} born?", "What is the birth year of {e}?"),
            (
                "{e} came into the world in {v}, the youngest of five children of a glassblower.",
                "Baptismal records list {e} as a newborn in {v}, in a parish of weavers and dyers.",
                "The family bible of the young {e}, now in a museum, records the arrival of the child in {v}.",
                "{v} is the year carved on the cradle that a museum displays as having belonged to {e}.",
                "{e} was born in {v}, the eldest child of a dyer and a schoolteacher.",
            ),
            (
                "When {e} was born is uncertain, and biographers still disagree about the birth year of {e}.",
                "The birth of {e} is poorly documented; in what year {e} was born cannot be read from the damaged church records.",
                "{e} died in {d}, but the year in which {e} was born has never been settled by biographers.",
            ),
        ),
        _Relation(
            "birthplace", "name",
            ("Where was {e} born?", "In which town was {e} born?", "What is the birthplace of {e}?"),
            (
                "The small harbour of {v} is where {e} spent the first years of life, among fishermen and net makers.",
                "{v}, a mill village in the northern hills, proudly calls {e} its most famous child.",
                "Growing up in {v}, {e} learned arithmetic from a schoolmaster who also kept bees.",
                "{e} was born in {v}, into a family that had lived there for generations, and was baptised in its stone chapel.",
            ),
            (
                "Where {e} was born is disputed, and several towns claim to be the birthplace of {e}.",
                "The birthplace of {e} is not known for certain; in which town {e} was born is a question biographers cannot answer.",
                "{e} was born far from any university, although where exactly {e} was born is rarely mentioned in biographies.",
            ),
        ),
        _Relation(
            "discovery", "compound",
            ("What did {e} discover?", "Which substance did {e} discover?", "What is {e} best known for discovering?"),
            (
                "Heating river clay in a sealed flask, {e} isolated a pale green salt and named it {v}.",
                "{v}, a bitter crystalline compound now used in dyes, was first extracted by {e} from the bark of mountain ash.",
                "The notebooks of {e} describe weeks of distilling marsh gas before {v} finally appeared as a violet residue.",
                "The discovery of {v}, a waxy mineral pulled from a quarry near the coast, made the name of {e}.",
                "{e} discovered {v}, a bitter compound now used in dyes, while boiling the bark of mountain ash.",
            ),
            (
                "What {e} discovered is often misunderstood, and the discovery that made {e} famous is described differently in every textbook.",
                "{e} is best known for a discovery, but which substance {e} actually discovered is disputed by historians of science.",
                "Students often ask what {e} discovered; the answer given in lectures about the discovery of {e} keeps changing.",
            ),
        ),
        _Relation(
            "university", "name",
            ("At which university did {e} work?", "Where did {e} hold a professorship?", "Which university employed {e}?"),
            (
                "Lecture halls in {v} filled whenever {e} taught the evening course on minerals and salts.",
                "The chair of chemistry at {v} went to {e}, who kept it for nearly three decades.",
                "{e} spent most of a long career in a cramped basement laboratory in {v}, teaching and measuring.",
                "Students travelled to {v} from across the continent to hear {e} lecture on the chemistry of metals.",
                "{e} worked at the university in {v} for nearly three decades, teaching the chemistry of metals.",
            ),
            (
                "At which university {e} worked is unclear, as {e} moved between universities and held several short professorships.",
                "The university career of {e} is poorly recorded, and where {e} held a professorship is disputed.",
                "Many universities claim {e} as a former professor, but which university really employed {e} is a matter of debate.",
            ),
        ),
        _Relation(
            "advisor", "person",
            ("Who was the doctoral advisor of {e}?", "Under whom did {e} study?", "Who supervised the doctorate of {e}?"),
            (
                "{v} supervised the young {e} in a private laboratory, through a long thesis on metallic salts.",
                "Lessons with {v}, a demanding teacher of chemistry, shaped how {e} approached every experiment.",
                "It was {v} who first noticed the talent of {e} and guided the long dissertation on mineral acids.",
                "{e} often credited {v}, a stern chemist with a famous temper, for years of patient training.",
                "The doctoral advisor of {e} was {v}, a stern chemist with a famous temper.",
            ),
            (
                "Who supervised {e} is debated, and the name of the doctoral advisor of {e} is missing from the university records.",
                "The doctoral advisor of {e} is rarely mentioned, and under whom {e} studied remains unclear to historians.",
                "{e} studied under several teachers, and biographers disagree about who the true doctoral advisor of {e} was.",
            ),
        ),
    ),
    background=(
        "{e} was a chemist whose careful measurements of salts and minerals are still cited.",
        "Colleagues described {e} as patient, stubborn and fond of long walks between experiments.",
        "{e} wrote three textbooks and hundreds of letters to other chemists.",
        "Portraits of {e} usually show a tired face above a high collar and ink-stained hands.",
    ),
    fillers=(
        "Laboratories of that era were cold, cramped and badly lit.",
        "Many letters from that time survive in private collections.",
        "Some biographers doubt parts of the usual story.",
        "Chemistry was then a young and quarrelsome discipline.",
        "{e} rarely spoke about private matters in public.",
        "A short memoir written by a former student adds a few details.",
        "Several of the original notebooks were lost in a flood.",
    ),
)

_COMPANY = _Kind(
    name="company",
    relations=(
        _Relation(
            "founded", "year",
            ("When was {e} founded?", "In what year was the company {e} established?", "What is the founding year of {e}?"),
            (
                "{e} began in {v} as a two-person workshop repairing clocks in a rented cellar.",
                "The first invoice ever sent by {e} is dated {v} and bills a baker for six brass hinges.",
                "In {v} two brothers pooled their savings, bought a secondhand lathe and started making valves.",
                "{e} was set up in {v}, when its first small shop opened its doors on the harbour road.",
                "{e} was founded in {v} by two brothers who bought a secondhand lathe and started making valves.",
            ),
            (
                "The founding of {e} is surrounded by legend, and even the company itself is unsure when {e} was founded.",
                "When {e} was established is unclear, since the founding documents of the company were lost in a move.",
                "{e} was listed on the exchange in {d}, but the year the company was founded is not stated in its reports.",
            ),
        ),
        _Relation(
            "founder", "person",
            ("Who founded {e}?", "Who was the founder of the company {e}?", "Which entrepreneur founded {e}?"),
            (
                "{v}, a former ship's engineer, put up the money for the first workshop and ran it for thirty years.",
                "Portraits of {v} still hang in the boardroom, honouring the tinsmith whose savings paid for the first lathe.",
                "It all started with {v}, who sketched the first valve design on the back of a train ticket.",
                "The firm was founded by {v}, a clockmaker's apprentice with a talent for selling.",
                "{e} was founded by {v}, a former ship's engineer who ran the first workshop for thirty years.",
            ),
            (
                "Who founded {e} is disputed, and two families still argue in court over which ancestor founded the company.",
                "The founder of {e} is rarely named in its advertising, and few customers know who founded the company.",
                "{e} was founded by an entrepreneur whose name the company has kept out of its official history.",
            ),
        ),
        _Relation(
            "headquarters", "name",
            ("Where is {e} headquartered?", "In which city is the headquarters of {e}?", "Where are the headquarters of {e} located?"),
            (
                "Staff of {e} work from a glass tower on the riverfront of {v}, opposite the old customs house.",
                "Every board meeting of {e} takes place in {v}, in offices above the former grain exchange.",
                "{v} hosts the main offices of {e}, which moved there from a cramped warehouse district.",
                "The headquarters of {e} are in {v}, near the central railway station.",
                "{e} is headquartered in {v}, in a glass tower on the riverfront opposite the old customs house.",
            ),
            (
                "Where {e} is headquartered has changed several times, and the current headquarters of the company is not widely known.",
                "The location of the headquarters of {e} is a common question, since the company has offices in many cities.",
                "{e} has moved its headquarters repeatedly, and which city hosts the headquarters of {e} today is unclear.",
            ),
        ),
        _Relation(
            "employees", "employees",
            ("How many employees does {e} have?", "How many people work for {e}?", "What is the size of the workforce of {e}?"),
            (
                "Payroll records of {e} list {v} staff across its factories and sales offices.",
                "{v} workers clock in each day at the plants and depots of {e}.",
                "The annual report puts the headcount at {v}, up slightly on the year before.",
                "With {v} people on its books, {e} is one of the larger employers in the region.",
            ),
            (
                "How many people work for {e} is hard to say, because the company rarely reports the size of its workforce.",
                "The number of employees at {e} is a frequent question from journalists, and the company declines to answer it.",
                "{e} cut jobs in {d}, and how many employees the company has today is not stated in any public document.",
            ),
        ),
        _Relation(
            "product", "name",
            ("What is the best-known product of {e}?", "Which product is {e} famous for?", "What does {e} mainly sell?"),
            (
                "Shops across the country stock the {v}, a small brass pressure gauge made by {e}.",
                "Most revenue of {e} comes from the {v}, a hand-cranked pump used on farms.",
                "Engineers trust the {v}, a sturdy valve that {e} has made for decades without changing its design.",
                "The best-selling product of {e} is the {v}, a folding lamp sold to miners and sailors.",
                "{e} is best known for the {v}, a small brass pressure gauge sold in shops across the country.",
            ),
            (
                "Which product {e} is best known for depends on who you ask, since the company sells many different products.",
                "The best-known product of {e} is a matter of taste, and the company itself does not name one famous product.",
                "People who know {e} often disagree about its most famous product, and its catalogue lists hundreds of items.",
            ),
        ),
    ),
    background=(
        "{e} is a manufacturer of valves, pumps and gauges for farms and small factories.",
        "The brand of {e} is painted on delivery vans and workshop signs across the region.",
        "{e} is known for plain engineering, long warranties and a dislike of advertising.",
        "Apprentices at {e} spend their first year in the repair shop before touching new products.",
    ),
    fillers=(
        "Its catalogue has barely changed in style for decades.",
        "Many of its customers are farmers and small workshops.",
        "The company rarely talks to the press.",
        "Some details of its early years are disputed.",
        "{e} still repairs old products free of charge.",
        "Rival firms have tried to copy its designs many times.",
        "A company newsletter goes out to staff every month.",
    ),
)

_RIVER = _Kind(
    name="river",
    relations=(
        _Relation(
            "length", "length",
            ("How long is the {e}?", "What is the length of the {e}?", "How many kilometres long is the {e}?"),
            (
                "From its spring to the lake the {e} runs {v} kilometres, passing through gorges and wide meadows.",
                "Canoeists who paddle the {e} from end to end cover {v} kilometres in about a month.",
                "Surveyors measured the {e} at {v} kilometres, including every meander of its lower course.",
                "Over {v} kilometres the water of the {e} drops through three gorges before it reaches the plain.",
            ),
            (
                "The length of the {e} is hard to measure, and maps disagree about how long the {e} really is.",
                "How long the {e} is depends on which spring is counted as its source, so its length is often disputed.",
                "Geography students are often asked about the length of the {e}, a long river whose exact length is rarely given.",
            ),
        ),
        _Relation(
            "source", "name",
            ("Where does the {e} rise?", "What is the source of the {e}?", "From which mountain does the {e} flow?"),
            (
                "Meltwater trickling from the glaciers of Mount {v} gathers into the first pools of the {e}.",
                "High on Mount {v}, a spring beneath a rock ledge feeds the little stream that becomes the {e}.",
                "Hikers following the {e} upstream end at a marshy meadow below Mount {v}.",
                "Snow on the slopes of Mount {v} keeps the {e} full through the dry summer months.",
                "The {e} rises on Mount {v}, from a spring beneath a rock ledge.",
            ),
            (
                "The source of the {e} is disputed, and geographers disagree about where the {e} really rises.",
                "Where the {e} rises has been argued over for a century, since several streams could be called the source of the river.",
                "Visitors often ask about the source of the {e}, but the river has no single spring that all maps agree on.",
            ),
        ),
        _Relation(
            "mouth", "name",
            ("Where does the {e} end?", "Into which lake does the {e} flow?", "What is the mouth of the {e}?"),
            (
                "Wide reed beds mark the place where the {e} empties into Lake {v}.",
                "Ferries cross Lake {v} near the delta of the {e}, where the brown water meets the clear.",
                "After the last gorge the {e} slows and spreads out into Lake {v} through a maze of channels.",
                "Lake {v} receives the silt of the {e}, and its northern shore grows a little every year.",
                "The {e} flows into Lake {v} through a maze of reedy channels.",
            ),
            (
                "Where the {e} ends is a surprisingly hard question, and the mouth of the {e} has shifted many times.",
                "Maps disagree about which lake the {e} flows into, because its mouth moves after every flood.",
                "The mouth of the {e} is rarely visited, and few people know into which lake the river flows.",
            ),
        ),
        _Relation(
            "bridges", "bridges",
            ("How many bridges cross the {e}?", "What is the number of bridges over the {e}?", "How many bridges span the {e}?"),
            (
                "Counting road, rail and foot crossings, {v} structures carry traffic over the {e}.",
                "A cyclist riding along the {e} would pass under {v} crossings between the mountains and the lake.",
                "The river authority maintains {v} crossings of the {e}, from rope walkways to iron railway spans.",
                "Engineers have built {v} crossings of the {e}, most of them in the last century.",
            ),
            (
                "The number of bridges over the {e} is often quoted wrongly, and how many bridges cross the {e} is unclear.",
                "How many bridges cross the {e} depends on whether footbridges are counted, so its bridges are hard to count.",
                "The bridges across the {e} are famous, but nobody seems to agree on how many bridges there are.",
            ),
        ),
        _Relation(
            "explorer", "person",
            ("Who first explored the {e}?", "Who was the first to map the {e}?", "Which explorer first travelled the length of the {e}?"),
            (
                "{v} paddled down the {e} in a bark canoe and drew the first chart of its rapids.",
                "All maps of the {e} go back to the notebooks of {v}, a surveyor who walked its banks for two summers.",
                "The first explorer to reach the deepest gorge on the {e} was {v}, a trapper who charted the river.",
                "{v} led a small party of boatmen along the {e} and returned with sketches of every bend.",
                "The {e} was first explored by {v}, who paddled down it in a bark canoe and drew a chart of its rapids.",
            ),
            (
                "Who first explored the {e} is disputed, and several explorers claimed to be the first to travel the {e}.",
                "The first exploration of the {e} is poorly recorded, and who first mapped the river remains uncertain.",
                "Many explorers travelled the {e}, and historians disagree about who explored it first.",
            ),
        ),
    ),
    background=(
        "The {e} is a cold, fast river that winds through forests and farmland.",
        "Trout, eels and otters live in the clear upper reaches of the {e}.",
        "Old mills and ferry houses still stand on the banks of the {e}.",
        "The {e} carried timber and grain for centuries before the railways came.",
    ),
    fillers=(
        "Its water is cold even at the end of summer.",
        "Herons wait in the shallows along its banks.",
        "The valley it flows through is popular with walkers.",
        "Older maps give it a slightly different name.",
        "Floods have changed its course more than once.",
        "Some details of its geography are still argued over.",
        "Anglers come to the {e} for its trout.",
    ),
)

_SHIP = _Kind(
    name="ship",
    relations=(
        _Relation(
            "launched", "year",
            ("When was the {e} launched?", "In what year was the ship {e} launched?", "What year did the {e} first enter the water?"),
            (
                "Crowds cheered on the slipway in {v} as the hull of the {e} slid into the harbour.",
                "The {e} took to the water in {v}, after three years on the stocks.",
                "In {v} a bottle of wine was broken over the bow and the {e} floated for the first time.",
                "Shipwrights finished the {e} in {v}, and she sailed on trials that same summer.",
                "The {e} was launched in {v} after three years on the stocks, to the cheers of a large crowd.",
            ),
            (
                "When the {e} was launched is unclear, and records of the launch of the {e} disagree on the year.",
                "The launch of the {e} is a popular topic, yet the year the ship was launched is missing from the registers.",
                "The {e} was broken up in {d}, but the year in which the ship was launched is still uncertain.",
            ),
        ),
        _Relation(
            "builder", "name",
            ("Which shipyard built the {e}?", "Who built the {e}?", "Where was the ship {e} built?"),
            (
                "Workers at the {v} yard riveted the hull plates of the {e} through a long winter.",
                "The {v} yard laid the keel of the {e} on its largest slipway.",
                "Plans of the {e} are kept in the archive of the {v} yard, where she was assembled.",
                "Carpenters and riveters employed by {v} shaped the frames and deck of the {e}.",
                "The {e} was built by the {v} yard, whose workers riveted her hull plates through a long winter.",
            ),
            (
                "Which shipyard built the {e} is disputed, and several yards claim to have built the {e}.",
                "The builder of the {e} is not named in the surviving papers, so who built the ship remains unknown.",
                "Where the {e} was built has been debated by maritime historians, since the ship was rebuilt twice.",
            ),
        ),
        _Relation(
            "captain", "person",
            ("Who was the first captain of the {e}?", "Who commanded the {e}?", "Which captain led the {e}?"),
            (
                "{v} stood on the bridge of the {e} for her maiden voyage and stayed aboard for eleven years.",
                "Crew letters from the {e} complain about the strict discipline kept by {v}.",
                "The logbook of the {e} was signed every evening by {v}, who gave orders from the bridge.",
                "{v} commanded the {e} through the storm that made her famous.",
                "The first captain of the {e} was {v}, who stayed aboard for eleven years.",
            ),
            (
                "Who commanded the {e} is unclear, and the name of the first captain of the {e} was lost with its logbooks.",
                "The captains of the {e} changed often, and which captain first led the {e} is disputed.",
                "The first captain of the {e} is rarely mentioned, although who commanded the ship later is well documented.",
            ),
        ),
        _Relation(
            "tonnage", "tonnage",
            ("What is the tonnage of the {e}?", "How many tonnes does the {e} displace?", "How heavy is the {e}?"),
            (
                "Fully loaded, the {e} pushes aside {v} tonnes of water.",
                "Harbour dues for the {e} were charged on {v} tonnes, a large figure for a vessel of her age.",
                "The register lists the {e} at {v} tonnes.",
                "Carrying coal and grain, the {e} weighed in at {v} tonnes on the port scales.",
            ),
            (
                "The tonnage of the {e} is often misquoted, and sources disagree about how many tonnes the {e} displaces.",
                "How heavy the {e} is has changed with every refit, so the tonnage of the ship is hard to give.",
                "After a refit in {d} the tonnage of the {e} changed, and how heavy the ship is now is unclear.",
            ),
        ),
        _Relation(
            "home_port", "name",
            ("What is the home port of the {e}?", "Where is the {e} based?", "From which port does the {e} sail?"),
            (
                "Most winters the {e} lies at anchor in {v}, where her crew have their families.",
                "The home port of the {e} is {v}, and the name is painted on her stern.",
                "Dock workers in {v} know the {e} well, since she returns there after every voyage.",
                "The harbour master of {v} keeps a berth free for the {e} all year.",
            ),
            (
                "The home port of the {e} has changed several times, and where the {e} is based today is unclear.",
                "Which port the {e} sails from is a common question, since the ship calls at many harbours.",
                "Sailors argue about the home port of the {e}, because the ship has been registered in different ports.",
            ),
        ),
    ),
    background=(
        "The {e} is a steel cargo steamer with a tall black funnel and a white bridge.",
        "The {e} carried timber, coal and passengers along the northern coast.",
        "Sailors who served on the {e} remember her as a slow but steady ship.",
        "A model of the {e} stands in the window of a maritime museum.",
    ),
    fillers=(
        "Her hull was painted dark green with a red waterline.",
        "The crew ate in a narrow mess below the bridge.",
        "Much of her history is known only from crew letters.",
        "Some parts of the story are still disputed by historians.",
        "The {e} was a familiar sight in northern harbours.",
        "Storms on that coast were frequent and violent.",
        "Few photographs of her survive.",
    ),
)

_KINDS: tuple[_Kind, ...] = (_TOWN, _SCIENTIST, _COMPANY, _RIVER, _SHIP)

# --------------------------------------------------------------------------- names and values

_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr", "th")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei")
_CODAS = ("", "", "", "", "n", "r", "l", "s", "m")
_COMPOUND_SUFFIXES = ("ite", "ine", "ium", "ol", "ane")
_NUMBER_RANGES = {
    "year": (1450, 1985),
    "population": (2500, 98000),
    "elevation": (150, 2950),
    "employees": (140, 52000),
    "length": (60, 3400),
    "bridges": (9, 180),
    "tonnage": (400, 9800),
}


def _template_words() -> list[str]:
    """Every word of every template, so that no made-up name can equal one of them."""
    texts: list[str] = []
    for kind in _KINDS:
        texts += [*kind.background, *kind.fillers]
        for relation in kind.relations:
            texts += [*relation.questions, *relation.answers, *relation.distractors]
    return sorted({word for text in texts for word in _WORD.findall(text.lower())})


class _Names:
    """Draws made-up words; no word and no value is ever handed out twice."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set(_template_words())

    def word(self) -> str:
        """A fresh capitalised word of 2-3 syllables."""
        while True:
            syllables = [
                self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS)
                for _ in range(self.rng.choice((2, 2, 3)))
            ]
            word = "".join(syllables).capitalize()
            if 4 <= len(word) <= 9 and word.lower() not in self.used:
                self.used.add(word.lower())
                return word

    def number(self, kind: str) -> str:
        """A fresh integer in the range of ``kind``, as digits."""
        low, high = _NUMBER_RANGES[kind]
        while True:
            value = str(self.rng.randint(low, high))
            if value not in self.used:
                self.used.add(value)
                return value

    def decoy_year(self) -> str:
        """A year that is no fact's value (it may repeat as a decoy)."""
        low, high = _NUMBER_RANGES["year"]
        while True:
            value = str(self.rng.randint(low, high))
            if value not in self.used:
                return value

    def value(self, kind: str) -> str:
        """A fresh value of the given value kind."""
        if kind in _NUMBER_RANGES:
            return self.number(kind)
        if kind == "person":
            return f"{self.word()} {self.word()}"
        if kind == "compound":
            compound = self.word().lower() + self.rng.choice(_COMPOUND_SUFFIXES)
            self.used.add(compound)
            return compound
        return self.word()

    def entity(self, kind: _Kind) -> str:
        """A fresh entity name in the style of ``kind``."""
        if kind.name == "scientist":
            return f"{self.word()} {self.word()}"
        if kind.name == "river":
            return f"{self.word()} River"
        return self.word()


# --------------------------------------------------------------------------- generation


def _word_count(text: str) -> int:
    return len(text.split())


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _contains(tokens: list[str], value: str) -> bool:
    """Whether the word sequence of ``value`` occurs in ``tokens`` (lower-cased words)."""
    needle = _tokens(value)
    return any(tokens[i : i + len(needle)] == needle for i in range(len(tokens) - len(needle) + 1))


def _compose(rng: random.Random, main: str, kind: _Kind, entity: str) -> str:
    """``main`` plus filler sentences at random places, 15-45 words in all."""
    sentences = [main]
    target = rng.randint(MIN_WORDS + 1, MAX_WORDS - 6)
    fillers = [f.format(e=entity) for f in kind.fillers]
    rng.shuffle(fillers)
    for filler in fillers:
        length = sum(_word_count(s) for s in sentences)
        if length >= target:
            break
        if length + _word_count(filler) <= MAX_WORDS:
            sentences.insert(rng.randint(0, len(sentences)), filler)
    text = " ".join(sentences)
    if not MIN_WORDS <= _word_count(text) <= MAX_WORDS:
        raise RuntimeError(f"synthetic passage has {_word_count(text)} words, outside {MIN_WORDS}-{MAX_WORDS}: {text!r}")
    return text


def _make_facts(rng: random.Random, names: _Names, n_entities: int, relations: tuple[int, int]) -> list[_Fact]:
    """Entities cycling over the kinds, each with a random subset of its relations."""
    facts = []
    for index in range(n_entities):
        kind = _KINDS[index % len(_KINDS)]
        entity = names.entity(kind)
        count = min(rng.randint(*relations), len(kind.relations))
        chosen = sorted(rng.sample(range(len(kind.relations)), count))
        facts.extend(_Fact(entity, kind, kind.relations[i], names.value(kind.relations[i].value)) for i in chosen)
    return facts


def _fact_passages(rng: random.Random, names: _Names, fact: _Fact, distractors: tuple[int, int]) -> list[_Draft]:
    """The answer passage of ``fact`` and its distractors."""
    entity, relation = fact.entity, fact.relation
    main = rng.choice(relation.answers).format(e=entity, v=fact.value)
    drafts = [_Draft(entity, _compose(rng, main, fact.kind, entity), fact)]
    count = min(rng.randint(*distractors), len(relation.distractors))
    for template in rng.sample(relation.distractors, count):
        text = template.format(e=entity, d=names.decoy_year())
        drafts.append(_Draft(entity, _compose(rng, text, fact.kind, entity)))
    return drafts


def _background_passages(rng: random.Random, entity: str, kind: _Kind, count: int) -> list[_Draft]:
    return [
        _Draft(entity, _compose(rng, template.format(e=entity), kind, entity))
        for template in rng.sample(kind.background, min(count, len(kind.background)))
    ]


def _split_entities(rng: random.Random, entities: list[str], fractions: Sequence[float]) -> dict[str, str]:
    """Entity -> split name (train, dev, test), by a shuffled cut."""
    order = list(entities)
    rng.shuffle(order)
    n_train = round(fractions[0] * len(order))
    n_dev = round(fractions[1] * len(order))
    return {
        entity: "train" if i < n_train else "dev" if i < n_train + n_dev else "test"
        for i, entity in enumerate(order)
    }


def _check(drafts: list[_Draft], facts: list[_Fact]) -> None:
    """Every fact's value occurs in exactly one passage of the corpus: its answer passage."""
    tokens = [_tokens(f"{d.entity}. {d.text}") for d in drafts]
    rows_with: dict[str, list[int]] = {}
    for row, words in enumerate(tokens):
        for word in dict.fromkeys(words):
            rows_with.setdefault(word, []).append(row)
    for fact in facts:
        rows = rows_with.get(_tokens(fact.value)[0], [])
        holders = [drafts[r] for r in rows if _contains(tokens[r], fact.value)]
        if len(holders) != 1 or holders[0].fact is not fact:
            raise RuntimeError(f"value {fact.value!r} of {fact.entity} ({fact.relation.name}) is in {len(holders)} passages")


def make_quickstart_dataset(
    seed: int = 13,
    n_entities: int = 120,
    relations_per_entity: tuple[int, int] = (4, 5),
    distractors_per_fact: tuple[int, int] = (1, 2),
    background_per_entity: tuple[int, int] = (1, 3),
    split_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
) -> Dataset:
    """Build the synthetic quickstart dataset (see the module docstring).

    Args:
        seed: Seed of the only random generator used; the same seed gives identical output.
        n_entities: Number of fictional entities, spread evenly over five kinds.
        relations_per_entity: Inclusive range of facts (and so questions) per entity.
        distractors_per_fact: Inclusive range of distractor passages per fact.
        background_per_entity: Inclusive range of background passages per entity.
        split_fractions: Shares of the entities in train, dev and test.

    Returns:
        A :class:`Dataset` named ``uae-quickstart`` with qrels ``train``, ``dev`` and ``test``;
        each question has one grade-1 passage, the one that states its answer.
    """
    if n_entities < len(_KINDS):
        raise ValueError(f"n_entities must be at least {len(_KINDS)}, got {n_entities}")
    if abs(sum(split_fractions) - 1.0) > 1e-9:
        raise ValueError(f"split_fractions must sum to 1, got {split_fractions}")
    rng = random.Random(seed)
    names = _Names(rng)
    facts = _make_facts(rng, names, n_entities, relations_per_entity)
    drafts = [d for fact in facts for d in _fact_passages(rng, names, fact, distractors_per_fact)]
    entities = list(dict.fromkeys(fact.entity for fact in facts))
    kind_of = {fact.entity: fact.kind for fact in facts}
    for entity in entities:
        drafts += _background_passages(rng, entity, kind_of[entity], rng.randint(*background_per_entity))
    _check(drafts, facts)
    return _assemble(rng, facts, drafts, _split_entities(rng, entities, split_fractions))


def write_quickstart_data(folder: str | os.PathLike) -> Path:
    """Generate the quickstart dataset (deterministic) into ``folder`` in the BEIR layout."""
    return write_dataset(make_quickstart_dataset(), folder)


def _assemble(rng: random.Random, facts: list[_Fact], drafts: list[_Draft], split_of: dict[str, str]) -> Dataset:
    """Shuffle, number and package passages, questions and qrels."""
    rng.shuffle(drafts)
    passages = [Passage(id=f"p{i:05d}", text=d.text, title=d.entity) for i, d in enumerate(drafts)]
    gold_id = {id(d.fact): passages[i].id for i, d in enumerate(drafts) if d.fact is not None}
    facts = list(facts)
    rng.shuffle(facts)
    queries: dict[str, Query] = {}
    qrels: dict[str, Qrels] = {"train": {}, "dev": {}, "test": {}}
    for i, fact in enumerate(facts):
        qid = f"q{i:05d}"
        text = rng.choice(fact.relation.questions).format(e=fact.entity)
        queries[qid] = Query(id=qid, text=text, answers=(fact.value,))
        qrels[split_of[fact.entity]][qid] = {gold_id[id(fact)]: 1}
    return Dataset(name=QUICKSTART_NAME, corpus=Corpus(passages), queries=queries, qrels=qrels)
