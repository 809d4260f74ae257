"""Write the mixed-trivia benchmark datasets from the fact tables below.

    python benchmarks/make_trivia.py            # writes the four files, prints a summary each

Files (paths relative to the repository root):

    examples/trivia1000.yaml        1,000 pairs of ordinary mixed trivia (training set)
    examples/trivia500.yaml         its first 500 pairs
    examples/trivia250.yaml         its first 250 pairs
    examples/heldout/trivia950.yaml 950 held-out pairs: the same kind of data with other items
                                    and phrasings, plus categories the training set lacks

Every category is put in a fixed order of its own (by a hash of the question), then all
categories are interleaved in proportion to their sizes, so any prefix of a file has about the
same mix of categories as the whole; trivia250 and trivia500 are such prefixes of trivia1000.
Nothing here is random: the same tables always give the same bytes.

Answers are 1-3 words, plain ASCII, no punctuation; every fact is meant to be true and ones with
two common answers (spelling variants, disputed capitals, transcontinental countries) are left
out on purpose.
"""

from __future__ import annotations

import hashlib
import re
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SIZE = 1000
HELDOUT_SIZE = 950
SUBSETS = (250, 500)

Pair = tuple[str, str]
Category = tuple[str, list[Pair]]

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")  # the same split as ppo_cli.textqa.data.tokenize


def tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def words(text: str) -> list[str]:
    return text.split()


def table(text: str) -> list[list[str]]:
    """Rows of a '|'-separated table, one row a line; blank lines and '#' comments skipped."""
    rows = []
    for line in text.strip().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append([cell.strip() for cell in line.split("|")])
    return rows


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_order(items: list, key=lambda x: x) -> list:
    """A fixed, well-mixed order (so the first items of a category are not all alike)."""
    return sorted(items, key=lambda x: _key(str(key(x))))


# ---------------------------------------------------------------------------------------------
# Fact tables
# ---------------------------------------------------------------------------------------------

# Country | capital | continent ("-" for a continent left out: transcontinental countries and
# Oceania, which is called both "Oceania" and "Australia"). Countries whose capital is disputed,
# split or spelled several ways (Bolivia, South Africa, Sri Lanka, Eswatini, Benin, Burundi,
# Myanmar, Indonesia, Israel, Yemen, Chad, Haiti, Tonga, ...) are not here as capitals. The
# country Georgia is left out everywhere (the US state has another capital, language, currency).
COUNTRIES = table("""
Nigeria | Abuja | Africa
Niger | Niamey | Africa
Mali | Bamako | Africa
Burkina Faso | Ouagadougou | Africa
Senegal | Dakar | Africa
Gambia | Banjul | Africa
Guinea | Conakry | Africa
Guinea-Bissau | Bissau | Africa
Sierra Leone | Freetown | Africa
Liberia | Monrovia | Africa
Ghana | Accra | Africa
Togo | Lome | Africa
Mauritania | Nouakchott | Africa
Morocco | Rabat | Africa
Algeria | Algiers | Africa
Tunisia | Tunis | Africa
Libya | Tripoli | Africa
Egypt | Cairo | -
Sudan | Khartoum | Africa
South Sudan | Juba | Africa
Ethiopia | Addis Ababa | Africa
Eritrea | Asmara | Africa
Djibouti | Djibouti | Africa
Somalia | Mogadishu | Africa
Kenya | Nairobi | Africa
Uganda | Kampala | Africa
Rwanda | Kigali | Africa
Tanzania | Dodoma | Africa
Gabon | Libreville | Africa
Cameroon | Yaounde | Africa
Central African Republic | Bangui | Africa
Republic of the Congo | Brazzaville | Africa
Democratic Republic of the Congo | Kinshasa | Africa
Angola | Luanda | Africa
Zambia | Lusaka | Africa
Malawi | Lilongwe | Africa
Mozambique | Maputo | Africa
Zimbabwe | Harare | Africa
Botswana | Gaborone | Africa
Namibia | Windhoek | Africa
Lesotho | Maseru | Africa
Sao Tome and Principe | Sao Tome | Africa
Cape Verde | Praia | Africa
Comoros | Moroni | Africa
Seychelles | Victoria | Africa
Mauritius | Port Louis | Africa
Madagascar | Antananarivo | Africa
Equatorial Guinea | Malabo | Africa
Ivory Coast | Yamoussoukro | Africa
South Africa | - | Africa
Eswatini | - | Africa
Burundi | - | Africa
Benin | - | Africa
Chad | - | Africa
Afghanistan | Kabul | Asia
Pakistan | Islamabad | Asia
India | New Delhi | Asia
Nepal | Kathmandu | Asia
Bhutan | Thimphu | Asia
Bangladesh | Dhaka | Asia
Maldives | Male | Asia
China | Beijing | Asia
Mongolia | Ulaanbaatar | Asia
North Korea | Pyongyang | Asia
South Korea | Seoul | Asia
Japan | Tokyo | Asia
Taiwan | Taipei | Asia
Philippines | Manila | Asia
Vietnam | Hanoi | Asia
Laos | Vientiane | Asia
Cambodia | Phnom Penh | Asia
Thailand | Bangkok | Asia
Malaysia | Kuala Lumpur | Asia
Singapore | Singapore | Asia
Brunei | Bandar Seri Begawan | Asia
East Timor | Dili | -
Iran | Tehran | Asia
Iraq | Baghdad | Asia
Syria | Damascus | Asia
Lebanon | Beirut | Asia
Jordan | Amman | Asia
Saudi Arabia | Riyadh | Asia
Kuwait | Kuwait City | Asia
Bahrain | Manama | Asia
Qatar | Doha | Asia
United Arab Emirates | Abu Dhabi | Asia
Oman | Muscat | Asia
Turkey | Ankara | -
Armenia | Yerevan | -
Azerbaijan | Baku | -
Kazakhstan | Astana | -
Uzbekistan | Tashkent | Asia
Turkmenistan | Ashgabat | Asia
Kyrgyzstan | Bishkek | Asia
Tajikistan | Dushanbe | Asia
Sri Lanka | - | Asia
Myanmar | - | Asia
Yemen | - | Asia
Iceland | Reykjavik | Europe
Norway | Oslo | Europe
Sweden | Stockholm | Europe
Finland | Helsinki | Europe
Denmark | Copenhagen | Europe
Estonia | Tallinn | Europe
Latvia | Riga | Europe
Lithuania | Vilnius | Europe
Poland | Warsaw | Europe
Germany | Berlin | Europe
Netherlands | Amsterdam | Europe
Belgium | Brussels | Europe
Luxembourg | Luxembourg | Europe
France | Paris | Europe
United Kingdom | London | Europe
Ireland | Dublin | Europe
Spain | Madrid | Europe
Portugal | Lisbon | Europe
Andorra | Andorra la Vella | Europe
Monaco | Monaco | Europe
Italy | Rome | Europe
San Marino | San Marino | Europe
Malta | Valletta | Europe
Switzerland | Bern | Europe
Liechtenstein | Vaduz | Europe
Austria | Vienna | Europe
Czech Republic | Prague | Europe
Slovakia | Bratislava | Europe
Hungary | Budapest | Europe
Slovenia | Ljubljana | Europe
Croatia | Zagreb | Europe
Bosnia and Herzegovina | Sarajevo | Europe
Serbia | Belgrade | Europe
Montenegro | Podgorica | Europe
North Macedonia | Skopje | Europe
Albania | Tirana | Europe
Greece | Athens | Europe
Bulgaria | Sofia | Europe
Romania | Bucharest | Europe
Moldova | Chisinau | Europe
Ukraine | Kyiv | Europe
Belarus | Minsk | Europe
Russia | Moscow | -
Cyprus | Nicosia | -
Canada | Ottawa | North America
United States | Washington | North America
Mexico | Mexico City | North America
Guatemala | Guatemala City | North America
Belize | Belmopan | North America
Honduras | Tegucigalpa | North America
El Salvador | San Salvador | North America
Nicaragua | Managua | North America
Costa Rica | San Jose | North America
Panama | Panama City | North America
Cuba | Havana | North America
Jamaica | Kingston | North America
Bahamas | Nassau | North America
Dominican Republic | Santo Domingo | North America
Dominica | Roseau | North America
Saint Lucia | Castries | North America
Saint Vincent and the Grenadines | Kingstown | North America
Saint Kitts and Nevis | Basseterre | North America
Barbados | Bridgetown | North America
Trinidad and Tobago | Port of Spain | -
Haiti | - | North America
Colombia | Bogota | South America
Venezuela | Caracas | South America
Guyana | Georgetown | South America
Suriname | Paramaribo | South America
Ecuador | Quito | South America
Peru | Lima | South America
Brazil | Brasilia | South America
Paraguay | Asuncion | South America
Uruguay | Montevideo | South America
Argentina | Buenos Aires | South America
Chile | Santiago | South America
Bolivia | - | South America
Australia | Canberra | -
New Zealand | Wellington | -
Papua New Guinea | Port Moresby | -
Fiji | Suva | -
Solomon Islands | Honiara | -
Vanuatu | Port Vila | -
Samoa | Apia | -
Tuvalu | Funafuti | -
Palau | Ngerulmud | -
Micronesia | Palikir | -
Marshall Islands | Majuro | -
""")

# "the United States" reads better than "United States" in a question.
THE = {
    "United States",
    "United Kingdom",
    "Netherlands",
    "Philippines",
    "Bahamas",
    "Gambia",
    "Maldives",
    "Comoros",
    "Seychelles",
    "Czech Republic",
    "Dominican Republic",
    "Central African Republic",
    "Republic of the Congo",
    "Democratic Republic of the Congo",
    "United Arab Emirates",
    "Solomon Islands",
    "Marshall Islands",
}


def an(noun: str) -> str:
    """The noun with "a" or "an" in front."""
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def the(country: str) -> str:
    return f"the {country}" if country in THE else country


US_STATE_CAPITALS = table("""
Alabama | Montgomery
Alaska | Juneau
Arizona | Phoenix
Arkansas | Little Rock
California | Sacramento
Colorado | Denver
Connecticut | Hartford
Delaware | Dover
Florida | Tallahassee
Georgia | Atlanta
Hawaii | Honolulu
Idaho | Boise
Illinois | Springfield
Indiana | Indianapolis
Iowa | Des Moines
Kansas | Topeka
Kentucky | Frankfort
Louisiana | Baton Rouge
Maine | Augusta
Maryland | Annapolis
Massachusetts | Boston
Michigan | Lansing
Minnesota | Saint Paul
Mississippi | Jackson
Missouri | Jefferson City
Montana | Helena
Nebraska | Lincoln
Nevada | Carson City
New Hampshire | Concord
New Jersey | Trenton
New Mexico | Santa Fe
New York | Albany
North Carolina | Raleigh
North Dakota | Bismarck
Ohio | Columbus
Oklahoma | Oklahoma City
Oregon | Salem
Pennsylvania | Harrisburg
Rhode Island | Providence
South Carolina | Columbia
South Dakota | Pierre
Tennessee | Nashville
Texas | Austin
Utah | Salt Lake City
Vermont | Montpelier
Virginia | Richmond
Washington | Olympia
West Virginia | Charleston
Wisconsin | Madison
Wyoming | Cheyenne
""")

# City (not a national capital) | continent
CITY_CONTINENTS = table("""
Lagos | Africa
Casablanca | Africa
Johannesburg | Africa
Cape Town | Africa
Alexandria | Africa
Mombasa | Africa
Mumbai | Asia
Shanghai | Asia
Osaka | Asia
Dubai | Asia
Karachi | Asia
Hong Kong | Asia
Kolkata | Asia
Barcelona | Europe
Milan | Europe
Munich | Europe
Manchester | Europe
Marseille | Europe
Rio de Janeiro | South America
Sao Paulo | South America
Medellin | South America
Toronto | North America
Chicago | North America
Los Angeles | North America
Vancouver | North America
Guadalajara | North America
""")

# Symbol | name, all 118 elements.
ELEMENTS = table("""
H | hydrogen
He | helium
Li | lithium
Be | beryllium
B | boron
C | carbon
N | nitrogen
O | oxygen
F | fluorine
Ne | neon
Na | sodium
Mg | magnesium
Al | aluminium
Si | silicon
P | phosphorus
S | sulfur
Cl | chlorine
Ar | argon
K | potassium
Ca | calcium
Sc | scandium
Ti | titanium
V | vanadium
Cr | chromium
Mn | manganese
Fe | iron
Co | cobalt
Ni | nickel
Cu | copper
Zn | zinc
Ga | gallium
Ge | germanium
As | arsenic
Se | selenium
Br | bromine
Kr | krypton
Rb | rubidium
Sr | strontium
Y | yttrium
Zr | zirconium
Nb | niobium
Mo | molybdenum
Tc | technetium
Ru | ruthenium
Rh | rhodium
Pd | palladium
Ag | silver
Cd | cadmium
In | indium
Sn | tin
Sb | antimony
Te | tellurium
I | iodine
Xe | xenon
Cs | caesium
Ba | barium
La | lanthanum
Ce | cerium
Pr | praseodymium
Nd | neodymium
Pm | promethium
Sm | samarium
Eu | europium
Gd | gadolinium
Tb | terbium
Dy | dysprosium
Ho | holmium
Er | erbium
Tm | thulium
Yb | ytterbium
Lu | lutetium
Hf | hafnium
Ta | tantalum
W | tungsten
Re | rhenium
Os | osmium
Ir | iridium
Pt | platinum
Au | gold
Hg | mercury
Tl | thallium
Pb | lead
Bi | bismuth
Po | polonium
At | astatine
Rn | radon
Fr | francium
Ra | radium
Ac | actinium
Th | thorium
Pa | protactinium
U | uranium
Np | neptunium
Pu | plutonium
Am | americium
Cm | curium
Bk | berkelium
Cf | californium
Es | einsteinium
Fm | fermium
Md | mendelevium
No | nobelium
Lr | lawrencium
Rf | rutherfordium
Db | dubnium
Sg | seaborgium
Bh | bohrium
Hs | hassium
Mt | meitnerium
Ds | darmstadtium
Rg | roentgenium
Cn | copernicium
Nh | nihonium
Fl | flerovium
Mc | moscovium
Lv | livermorium
Ts | tennessine
Og | oganesson
""")
# The training set asks for these 80 symbols (elements 1-56 and the best-known heavier ones);
# the held-out set asks for the other 38.
TRAIN_ELEMENT_SYMBOLS = [s for s, _ in ELEMENTS[:56]] + words(
    "La Nd Eu W Ir Os Pt Au Hg Pb Bi Po Rn Fr Ra Th U Np Pu Am Cm Cf Es Md"
)
# Names with a second common spelling (aluminum, sulphur, cesium) are not asked for by symbol.
NAME_VARIANTS = {"Al", "S", "Cs"}

# Animal | class, for "Is a salmon a fish, a bird or a mammal?"
ANIMALS_FBM = table("""
salmon | fish
shark | fish
tuna | fish
trout | fish
cod | fish
goldfish | fish
eel | fish
seahorse | fish
carp | fish
herring | fish
sardine | fish
swordfish | fish
clownfish | fish
stingray | fish
eagle | bird
penguin | bird
ostrich | bird
owl | bird
sparrow | bird
parrot | bird
flamingo | bird
pelican | bird
robin | bird
swan | bird
kiwi | bird
emu | bird
hummingbird | bird
peacock | bird
whale | mammal
dolphin | mammal
bat | mammal
elephant | mammal
horse | mammal
mouse | mammal
lion | mammal
kangaroo | mammal
platypus | mammal
seal | mammal
walrus | mammal
otter | mammal
giraffe | mammal
rabbit | mammal
""")

# Animal | class, for the held-out "Is a frog a reptile, an amphibian or an insect?"
ANIMALS_RAI = table("""
snake | reptile
lizard | reptile
crocodile | reptile
alligator | reptile
turtle | reptile
tortoise | reptile
gecko | reptile
iguana | reptile
chameleon | reptile
cobra | reptile
python | reptile
rattlesnake | reptile
frog | amphibian
toad | amphibian
salamander | amphibian
newt | amphibian
axolotl | amphibian
ant | insect
bee | insect
butterfly | insect
beetle | insect
mosquito | insect
grasshopper | insect
ladybug | insect
dragonfly | insect
moth | insect
wasp | insect
cockroach | insect
termite | insect
flea | insect
""")
# Held-out two-way questions about animals the training set does not ask about.
ANIMALS_TWO_WAY = table("""
hedgehog | mammal | fish
koala | mammal | fish
manatee | mammal | fish
hippopotamus | mammal | fish
squirrel | mammal | fish
orca | mammal | fish
narwhal | mammal | fish
pike | fish | mammal
mackerel | fish | mammal
anchovy | fish | mammal
piranha | fish | mammal
halibut | fish | mammal
puffin | bird | mammal
toucan | bird | mammal
vulture | bird | mammal
woodpecker | bird | mammal
heron | bird | mammal
spider | arachnid | insect
scorpion | arachnid | insect
tick | arachnid | insect
""")

ONES = words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
TENS = words("_ _ twenty thirty forty fifty sixty seventy eighty ninety")


def in_words(n: int) -> str:
    """English words for n (no hyphens, no "and"); only the forms used here."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    for size, word in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size and n % size == 0:
            return f"{in_words(n // size)} {word}"
    raise ValueError(n)


HELDOUT_NUMBERS = [8, 13, 19, 23, 38, 41, 56, 59, 64, 67, 72, 74, 85, 91, 97]
TRAIN_NUMBERS = (
    [n for n in range(1, 100) if n not in HELDOUT_NUMBERS]
    + list(range(100, 1000, 100))
    + list(range(1000, 8000, 1000))
)
HELDOUT_BIG_NUMBERS = [8000, 9000, 10000, 20000, 50000, 100000, 1000000]

# Irregular plurals: the training set's, then the held-out set's (other nouns, some regular
# ones with a spelling change).
PLURALS_TRAIN = table("""
mouse | mice
man | men
woman | women
child | children
tooth | teeth
foot | feet
goose | geese
person | people
ox | oxen
louse | lice
cactus | cacti
fungus | fungi
nucleus | nuclei
radius | radii
stimulus | stimuli
alumnus | alumni
crisis | crises
thesis | theses
analysis | analyses
axis | axes
basis | bases
diagnosis | diagnoses
hypothesis | hypotheses
oasis | oases
phenomenon | phenomena
criterion | criteria
bacterium | bacteria
knife | knives
wife | wives
life | lives
leaf | leaves
wolf | wolves
half | halves
calf | calves
loaf | loaves
shelf | shelves
thief | thieves
elf | elves
sheep | sheep
deer | deer
moose | moose
series | series
species | species
aircraft | aircraft
larva | larvae
die | dice
""")
PLURALS_HELDOUT = table("""
parenthesis | parentheses
vertebra | vertebrae
alga | algae
matrix | matrices
vertex | vertices
grandchild | grandchildren
policeman | policemen
fireman | firemen
dormouse | dormice
baby | babies
city | cities
party | parties
story | stories
lady | ladies
firefly | fireflies
church | churches
fox | foxes
dish | dishes
watch | watches
glass | glasses
box | boxes
quiz | quizzes
hero | heroes
potato | potatoes
tomato | tomatoes
echo | echoes
torpedo | torpedoes
""")

# Verb | past tense | past participle ("-" where it is not asked). Verbs whose past has two
# common forms (dream, learn, hang, lie, shine, dive, kneel, ...) are left out.
VERBS = table("""
go | went | gone
eat | ate | eaten
see | saw | seen
run | ran | run
swim | swam | swum
sing | sang | sung
drink | drank | drunk
ring | rang | rung
begin | began | begun
sink | sank | sunk
shrink | shrank | shrunk
stink | stank | stunk
write | wrote | written
drive | drove | driven
ride | rode | ridden
rise | rose | risen
choose | chose | chosen
speak | spoke | spoken
break | broke | broken
freeze | froze | frozen
steal | stole | stolen
wake | woke | woken
take | took | taken
shake | shook | shaken
give | gave | given
forgive | forgave | forgiven
forget | forgot | forgotten
bite | bit | bitten
hide | hid | hidden
fall | fell | fallen
fly | flew | flown
grow | grew | grown
know | knew | known
throw | threw | thrown
blow | blew | blown
draw | drew | drawn
wear | wore | worn
tear | tore | torn
swear | swore | sworn
do | did | done
come | came | come
become | became | become
beat | beat | beaten
forbid | forbade | forbidden
mistake | mistook | mistaken
withdraw | withdrew | withdrawn
overtake | overtook | overtaken
weave | wove | woven
arise | arose | arisen
slay | slew | slain
hold | held | -
tell | told | -
sell | sold | -
buy | bought | -
bring | brought | -
think | thought | -
fight | fought | -
seek | sought | -
teach | taught | -
catch | caught | -
have | had | -
make | made | -
say | said | -
pay | paid | -
lay | laid | -
find | found | -
bind | bound | -
grind | ground | -
stand | stood | -
understand | understood | -
sit | sat | -
win | won | -
dig | dug | -
stick | stuck | -
strike | struck | -
swing | swung | -
sting | stung | -
cling | clung | -
fling | flung | -
slide | slid | -
lead | led | -
feed | fed | -
bleed | bled | -
breed | bred | -
flee | fled | -
meet | met | -
keep | kept | -
sleep | slept | -
sweep | swept | -
weep | wept | -
creep | crept | -
feel | felt | -
leave | left | -
lose | lost | -
mean | meant | -
send | sent | -
spend | spent | -
lend | lent | -
bend | bent | -
build | built | -
hear | heard | -
shoot | shot | -
cut | cut | -
put | put | -
hit | hit | -
shut | shut | -
hurt | hurt | -
cost | cost | -
spread | spread | -
burst | burst | -
""")

# Adjective | comparative | superlative (held-out only)
COMPARISONS = table("""
good | better | best
bad | worse | worst
big | bigger | biggest
happy | happier | happiest
hot | hotter | hottest
thin | thinner | thinnest
sad | sadder | saddest
easy | easier | easiest
busy | busier | busiest
early | earlier | earliest
heavy | heavier | heaviest
funny | funnier | funniest
large | larger | largest
nice | nicer | nicest
wet | wetter | wettest
pretty | prettier | prettiest
lazy | lazier | laziest
many | more | most
""")

# Word | opposite. Only words with one usual opposite (not "light", "hard", "old", "open").
OPPOSITES_TRAIN = table("""
hot | cold
cold | hot
big | small
up | down
down | up
in | out
left | right
yes | no
day | night
night | day
black | white
white | black
happy | sad
fast | slow
wet | dry
dry | wet
full | empty
empty | full
early | late
rich | poor
poor | rich
strong | weak
tall | short
thick | thin
loud | quiet
win | lose
love | hate
push | pull
pull | push
buy | sell
sell | buy
above | below
inside | outside
top | bottom
front | back
north | south
south | north
east | west
west | east
first | last
true | false
false | true
alive | dead
asleep | awake
awake | asleep
always | never
never | always
before | after
after | before
clean | dirty
dirty | clean
cheap | expensive
expensive | cheap
smooth | rough
friend | enemy
high | low
low | high
wide | narrow
deep | shallow
remember | forget
increase | decrease
maximum | minimum
positive | negative
entrance | exit
import | export
plus | minus
odd | even
even | odd
success | failure
war | peace
peace | war
victory | defeat
visible | invisible
possible | impossible
legal | illegal
correct | incorrect
honest | dishonest
agree | disagree
appear | disappear
inhale | exhale
ascend | descend
sunrise | sunset
summer | winter
winter | summer
heavy | light
lend | borrow
question | answer
""")
ANTONYMS_HELDOUT = table("""
ancient | modern
guilty | innocent
interior | exterior
junior | senior
senior | junior
permanent | temporary
temporary | permanent
polite | rude
private | public
public | private
rural | urban
urban | rural
vertical | horizontal
horizontal | vertical
wild | tame
include | exclude
exclude | include
majority | minority
minority | majority
superior | inferior
inferior | superior
artificial | natural
hero | villain
optimist | pessimist
pessimist | optimist
on | off
off | on
over | under
under | over
found | lost
lost | found
tight | loose
loose | tight
safe | dangerous
dangerous | safe
good | bad
bad | good
many | few
few | many
near | far
laugh | cry
boy | girl
girl | boy
difficult | easy
better | worse
worse | better
best | worst
worst | best
most | least
least | most
everything | nothing
nothing | everything
""")

# Country | language mainly spoken there
LANGUAGES_TRAIN = table("""
Brazil | Portuguese
Portugal | Portuguese
Mexico | Spanish
Colombia | Spanish
Peru | Spanish
Chile | Spanish
Cuba | Spanish
Argentina | Spanish
Spain | Spanish
France | French
Germany | German
Austria | German
Italy | Italian
Japan | Japanese
South Korea | Korean
Russia | Russian
Poland | Polish
Greece | Greek
Turkey | Turkish
Netherlands | Dutch
Sweden | Swedish
Norway | Norwegian
Denmark | Danish
Finland | Finnish
Iceland | Icelandic
Hungary | Hungarian
Czech Republic | Czech
Romania | Romanian
Ukraine | Ukrainian
Vietnam | Vietnamese
Thailand | Thai
Israel | Hebrew
Egypt | Arabic
Saudi Arabia | Arabic
Iraq | Arabic
United States | English
United Kingdom | English
Australia | English
New Zealand | English
""")
LANGUAGES_HELDOUT = table("""
Venezuela | Spanish
Uruguay | Spanish
Ecuador | Spanish
Jordan | Arabic
Syria | Arabic
Kuwait | Arabic
Jamaica | English
Bulgaria | Bulgarian
Slovakia | Slovak
North Korea | Korean
Malaysia | Malay
Armenia | Armenian
Albania | Albanian
Lithuania | Lithuanian
Latvia | Latvian
Estonia | Estonian
Croatia | Croatian
Serbia | Serbian
Laos | Lao
Cambodia | Khmer
Nepal | Nepali
Somalia | Somali
Uzbekistan | Uzbek
""")

# Country | currency. Russia (ruble/rouble), China (yuan/renminbi) and Bulgaria (changing to the
# euro) are left out.
CURRENCIES_TRAIN = table("""
Japan | yen
India | rupee
United States | dollar
Canada | dollar
Mexico | peso
Argentina | peso
Brazil | real
South Africa | rand
South Korea | won
Switzerland | franc
Sweden | krona
Norway | krone
Poland | zloty
Thailand | baht
Vietnam | dong
Turkey | lira
Indonesia | rupiah
Malaysia | ringgit
Hungary | forint
Nigeria | naira
Ghana | cedi
Germany | euro
France | euro
Italy | euro
Spain | euro
Saudi Arabia | riyal
Ukraine | hryvnia
Peru | sol
""")
CURRENCIES_HELDOUT = table("""
Denmark | krone
Iceland | krona
Czech Republic | koruna
Romania | leu
Moldova | leu
Kenya | shilling
Uganda | shilling
Tanzania | shilling
Egypt | pound
United Kingdom | pound
Australia | dollar
New Zealand | dollar
Singapore | dollar
Jamaica | dollar
Pakistan | rupee
Nepal | rupee
Sri Lanka | rupee
Qatar | riyal
Iran | rial
Oman | rial
Bangladesh | taka
Philippines | peso
Chile | peso
Colombia | peso
Cuba | peso
Uruguay | peso
Cambodia | riel
Laos | kip
Armenia | dram
Zambia | kwacha
Malawi | kwacha
Botswana | pula
Ethiopia | birr
Morocco | dirham
United Arab Emirates | dirham
Kuwait | dinar
Jordan | dinar
Serbia | dinar
Algeria | dinar
Tunisia | dinar
Angola | kwanza
Paraguay | guarani
Guatemala | quetzal
Kazakhstan | tenge
Netherlands | euro
Portugal | euro
Greece | euro
Ireland | euro
Austria | euro
Finland | euro
Croatia | euro
""")

COLORS_TRAIN = table("""
What color is a ripe banana? | yellow
What color is a lemon? | yellow
What color is fresh grass? | green
What color is the sky on a clear day? | blue
What color is fresh snow? | white
What color is coal? | black
What color is blood? | red
What color is a ripe strawberry? | red
What color is a ripe tomato? | red
What color is a carrot? | orange
What color is a pumpkin? | orange
What color is a lime? | green
What color is broccoli? | green
What color is an emerald? | green
What color is a ruby? | red
What color is a sapphire? | blue
What color is milk? | white
What color is a crow? | black
What color is a flamingo? | pink
What color is a canary? | yellow
What color is an eggplant? | purple
What are the colors of a giant panda? | black and white
What are the colors of a zebra? | black and white
What color means stop on a traffic light? | red
What color means go on a traffic light? | green
What color is a school bus in the United States? | yellow
""")

# Animal | its young
ANIMAL_YOUNG = table("""
cat | kitten
dog | puppy
cow | calf
horse | foal
sheep | lamb
goat | kid
pig | piglet
duck | duckling
goose | gosling
swan | cygnet
frog | tadpole
kangaroo | joey
koala | joey
bear | cub
lion | cub
tiger | cub
cheetah | cub
deer | fawn
owl | owlet
eagle | eaglet
chicken | chick
butterfly | caterpillar
hare | leveret
elephant | calf
whale | calf
giraffe | calf
seal | pup
zebra | foal
donkey | foal
turkey | poult
pigeon | squab
""")

# Word pools for "reverse the words" (the held-out set uses other words).
REVERSE_WORDS_TRAIN = words(
    "red blue green yellow black white pink brown cat dog bird fish horse cow pig duck"
)
REVERSE_WORDS_HELDOUT = words(
    "apple pear plum grape lemon mango peach book pen cup chair table lamp clock "
    "sun moon star rain snow wind tree river"
)

# --- held-out-only categories ----------------------------------------------------------------

SPACE = table("""
What is the largest planet in our solar system? | Jupiter
What is the smallest planet in our solar system? | Mercury
Which planet is closest to the Sun? | Mercury
Which planet is farthest from the Sun? | Neptune
Which planet is known as the Red Planet? | Mars
Which planet is best known for its rings? | Saturn
What is the hottest planet in our solar system? | Venus
Which planet has the Great Red Spot? | Jupiter
Which planet spins tipped over on its side? | Uranus
Which planet is often called Earth's twin? | Venus
Which planet is first from the Sun? | Mercury
Which planet is second from the Sun? | Venus
Which planet is third from the Sun? | Earth
Which planet is fourth from the Sun? | Mars
Which planet is fifth from the Sun? | Jupiter
Which planet is sixth from the Sun? | Saturn
Which planet is seventh from the Sun? | Uranus
Which planet is eighth from the Sun? | Neptune
Which star is at the center of our solar system? | Sun
What is the name of Earth's natural satellite? | Moon
How many planets are in our solar system? | 8
What is the largest moon of Saturn? | Titan
What is the largest moon in our solar system? | Ganymede
Which dwarf planet used to be counted as the ninth planet? | Pluto
What is the name of our galaxy? | Milky Way
What is the nearest large spiral galaxy to the Milky Way? | Andromeda
Which star is nearest to the Sun? | Proxima Centauri
Who was the first person to walk on the Moon? | Neil Armstrong
Who was the first person to travel into space? | Yuri Gagarin
""")

WORLD = table("""
What is the largest ocean on Earth? | Pacific
What is the largest continent? | Asia
What is the largest hot desert in the world? | Sahara
What is the largest country in the world by area? | Russia
What is the highest mountain above sea level? | Mount Everest
What is the largest animal that has ever lived? | blue whale
What is the tallest animal? | giraffe
What is the fastest land animal? | cheetah
What is the largest living bird? | ostrich
What is the largest organ of the human body? | skin
What is the hardest natural substance? | diamond
At how many degrees Celsius does water boil at sea level? | 100
At how many degrees Celsius does water freeze? | 0
How many days are there in a week? | 7
How many days are there in a leap year? | 366
How many months are there in a year? | 12
How many hours are there in a day? | 24
How many minutes are there in an hour? | 60
How many seconds are there in a minute? | 60
How many legs does a spider have? | 8
How many legs does an insect have? | 6
How many bones are in the adult human body? | 206
How many chambers does the human heart have? | 4
How many colors are in a rainbow? | 7
How many strings does a standard guitar have? | 6
How many players does a soccer team have on the field? | 11
Which gas do plants take in from the air to make food? | carbon dioxide
Which gas do humans need to breathe in to live? | oxygen
""")

AUTHORS = table("""
Romeo and Juliet | William Shakespeare
Macbeth | William Shakespeare
Othello | William Shakespeare
King Lear | William Shakespeare
Emma | Jane Austen
Sense and Sensibility | Jane Austen
Anna Karenina | Leo Tolstoy
Crime and Punishment | Fyodor Dostoevsky
The Brothers Karamazov | Fyodor Dostoevsky
Nineteen Eighty-Four | George Orwell
Animal Farm | George Orwell
Moby-Dick | Herman Melville
Oliver Twist | Charles Dickens
Great Expectations | Charles Dickens
A Christmas Carol | Charles Dickens
David Copperfield | Charles Dickens
Jane Eyre | Charlotte Bronte
Wuthering Heights | Emily Bronte
Frankenstein | Mary Shelley
Dracula | Bram Stoker
The Odyssey | Homer
The Iliad | Homer
Ulysses | James Joyce
The Old Man and the Sea | Ernest Hemingway
To Kill a Mockingbird | Harper Lee
Of Mice and Men | John Steinbeck
The Grapes of Wrath | John Steinbeck
Brave New World | Aldous Huxley
Lord of the Flies | William Golding
Alice's Adventures in Wonderland | Lewis Carroll
Treasure Island | Robert Louis Stevenson
The Adventures of Tom Sawyer | Mark Twain
Adventures of Huckleberry Finn | Mark Twain
The Divine Comedy | Dante Alighieri
Les Miserables | Victor Hugo
The Hunchback of Notre-Dame | Victor Hugo
The Three Musketeers | Alexandre Dumas
The Count of Monte Cristo | Alexandre Dumas
Madame Bovary | Gustave Flaubert
The Metamorphosis | Franz Kafka
The Trial | Franz Kafka
One Hundred Years of Solitude | Gabriel Garcia Marquez
Robinson Crusoe | Daniel Defoe
Gulliver's Travels | Jonathan Swift
The Jungle Book | Rudyard Kipling
Around the World in Eighty Days | Jules Verne
Little Women | Louisa May Alcott
The Picture of Dorian Gray | Oscar Wilde
Heart of Darkness | Joseph Conrad
Fahrenheit 451 | Ray Bradbury
The Canterbury Tales | Geoffrey Chaucer
Paradise Lost | John Milton
The Prince | Niccolo Machiavelli
On the Origin of Species | Charles Darwin
Middlemarch | George Eliot
Mrs Dalloway | Virginia Woolf
Charlie and the Chocolate Factory | Roald Dahl
Things Fall Apart | Chinua Achebe
The Raven | Edgar Allan Poe
The Scarlet Letter | Nathaniel Hawthorne
The Call of the Wild | Jack London
Doctor Zhivago | Boris Pasternak
The Shining | Stephen King
""")

PAINTINGS = table("""
the Mona Lisa | Leonardo da Vinci
The Last Supper | Leonardo da Vinci
The Starry Night | Vincent van Gogh
Sunflowers | Vincent van Gogh
Guernica | Pablo Picasso
The Scream | Edvard Munch
The Persistence of Memory | Salvador Dali
Girl with a Pearl Earring | Johannes Vermeer
The Night Watch | Rembrandt
The Birth of Venus | Sandro Botticelli
the ceiling of the Sistine Chapel | Michelangelo
Water Lilies | Claude Monet
The Kiss | Gustav Klimt
American Gothic | Grant Wood
""")

ANIMAL_SOUNDS = table("""
cow | moo
pig | oink
duck | quack
cat | meow
lion | roar
snake | hiss
owl | hoot
bee | buzz
frog | croak
wolf | howl
mouse | squeak
crow | caw
horse | neigh
sheep | baa
turkey | gobble
pigeon | coo
hen | cluck
donkey | bray
""")

COLLECTIVES = table("""
lions | pride
wolves | pack
fish | school
bees | swarm
cows | herd
crows | murder
whales | pod
ants | colony
owls | parliament
puppies | litter
sheep | flock
monkeys | troop
stars | constellation
islands | archipelago
""")

COLOR_MIXES = table("""
blue and yellow | green
yellow and blue | green
red and yellow | orange
yellow and red | orange
red and blue | purple
blue and red | purple
red and white | pink
white and red | pink
""")

SHAPES = table("""
How many sides does a triangle have? | 3
How many sides does a square have? | 4
How many sides does a rectangle have? | 4
How many sides does a rhombus have? | 4
How many sides does a pentagon have? | 5
How many sides does a hexagon have? | 6
How many sides does a heptagon have? | 7
How many sides does an octagon have? | 8
How many sides does a nonagon have? | 9
How many sides does a decagon have? | 10
How many sides does a dodecagon have? | 12
How many faces does a cube have? | 6
How many edges does a cube have? | 12
How many corners does a cube have? | 8
How many faces does a tetrahedron have? | 4
Which shape has three sides? | triangle
Which shape has five sides? | pentagon
Which shape has six sides? | hexagon
Which shape has seven sides? | heptagon
Which shape has eight sides? | octagon
Which shape has nine sides? | nonagon
Which shape has ten sides? | decagon
""")

SPELLING_WORDS = words(
    "cat dog sun hat bed cup map pen fox egg book fish milk tree frog ship star rain moon "
    "door lamp hand bird cake ball boat kite apple house water chair table horse bread "
    "green plant river train cloud smile"
)

DAYS = words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = words(
    "January February March April May June July August September October November December"
)
ORDINALS = words(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth"
)
MONTH_DAYS = [31, None, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]  # February varies: not asked


# ---------------------------------------------------------------------------------------------
# Categories
# ---------------------------------------------------------------------------------------------


def _capitals() -> tuple[list[list[str]], list[list[str]]]:
    """Countries with a capital, split into the training set's and the held-out rest."""
    rows = hash_order([r for r in COUNTRIES if r[1] != "-"], key=lambda r: "capital " + r[0])
    return rows[:165], rows[165:]


def _continents() -> tuple[list[list[str]], list[list[str]]]:
    rows = hash_order([r for r in COUNTRIES if r[2] != "-"], key=lambda r: "continent " + r[0])
    return rows[:120], rows[120:]


def _past_tense_verbs() -> tuple[list[list[str]], list[list[str]]]:
    """Verbs whose past tense the training set asks for (80), and the held-out rest."""
    rows = hash_order(VERBS, key=lambda r: "past " + r[0])
    return rows[:80], rows[80:]


def _pick_pairs(candidates: list[tuple[int, int]], n: int, tag: str) -> list[tuple[int, int]]:
    return hash_order(candidates, key=lambda ab: f"{tag} {ab}")[:n]


def _sum_pairs() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(a, b) for 'a plus b' in training; other unordered pairs for the held-out sums."""
    cands = [(a, b) for a in range(1, 16) for b in range(1, 16)]
    train = _pick_pairs(cands, 66, "plus")
    used = {frozenset(ab) for ab in train}
    rest = [ab for ab in cands if frozenset(ab) not in used]
    return train, _pick_pairs(rest, 40, "sum")


def _difference_pairs() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    cands = [(a, b) for a in range(2, 21) for b in range(1, a + 1)]
    train = _pick_pairs(cands, 66, "minus")
    rest = [ab for ab in cands if ab not in set(train)]
    return train, _pick_pairs(rest, 40, "subtract")


def _reversals(words: list[str], n: int, tag: str) -> list[list[str]]:
    """n sequences of 2 or 3 distinct words (half each), no word repeated within one."""
    two = [[a, b] for a in words for b in words if a != b]
    three = [[a, b, c] for a in words for b in words for c in words if len({a, b, c}) == 3]
    return (
        hash_order(two, key=lambda s: f"{tag} {s}")[: n // 2]
        + hash_order(three, key=lambda s: f"{tag} {s}")[: n - n // 2]
    )


def train_categories() -> list[Category]:
    capitals, _ = _capitals()
    continents, _ = _continents()
    sym_to_name = {sym: name for sym, name in ELEMENTS}
    sums, _ = _sum_pairs()
    diffs, _ = _difference_pairs()
    cats: list[Category] = [
        (
            "capital",
            [(f"What is the capital of {the(c)}?", cap) for c, cap, _ in capitals],
        ),
        (
            "element_symbol",
            [
                (f"What is the chemical symbol for {sym_to_name[s]}?", s)
                for s in TRAIN_ELEMENT_SYMBOLS
            ],
        ),
        (
            "continent",
            [(f"Which continent is {the(c)} in?", cont) for c, _, cont in continents],
        ),
        (
            "animal_class",
            [(f"Is {an(x)} a fish, a bird or a mammal?", k) for x, k in ANIMALS_FBM],
        ),
        (
            "number_in_words",
            [(f"How is {n} written in words?", in_words(n)) for n in TRAIN_NUMBERS],
        ),
        ("plural", [(f"What is the plural of {w}?", p) for w, p in PLURALS_TRAIN]),
        (
            "past_tense",
            [(f"What is the past tense of {v}?", p) for v, p, _ in _past_tense_verbs()[0]],
        ),
        ("sum", [(f"What is {a} plus {b}?", str(a + b)) for a, b in sums]),
        ("difference", [(f"What is {a} minus {b}?", str(a - b)) for a, b in diffs]),
        (
            "reverse_words",
            [
                (f"Reverse the words: {' '.join(s)}", " ".join(reversed(s)))
                for s in _reversals(REVERSE_WORDS_TRAIN, 80, "reverse")
            ],
        ),
        ("opposite", [(f"What is the opposite of {w}?", o) for w, o in OPPOSITES_TRAIN]),
        (
            "language",
            [(f"What language is mainly spoken in {the(c)}?", lang) for c, lang in LANGUAGES_TRAIN],
        ),
        (
            "currency",
            [(f"What currency is used in {the(c)}?", cur) for c, cur in CURRENCIES_TRAIN],
        ),
        ("color", [(q, a) for q, a in COLORS_TRAIN]),
        ("animal_young", [(f"What is a baby {a} called?", y) for a, y in ANIMAL_YOUNG]),
    ]
    return cats


def heldout_categories() -> list[Category]:
    _, capitals_rest = _capitals()
    train_capitals, _ = _capitals()
    _, continents_rest = _continents()
    _, sums = _sum_pairs()
    _, diffs = _difference_pairs()
    train_syms = set(TRAIN_ELEMENT_SYMBOLS)
    # Capitals named after their own country, or shared by a city elsewhere, are not asked back.
    reverse_capitals = [
        (c, cap)
        for c, cap, _ in train_capitals
        if cap != c
        and cap not in {"Victoria", "Kingston", "Kingstown", "Georgetown"}
        and not cap.endswith(" City")
        and len(c.split()) <= 3
    ]
    reverse_capitals = hash_order(reverse_capitals, key=lambda r: "which country " + r[0])[:40]
    reverse_symbols = [(s, n) for s, n in ELEMENTS if s in train_syms and s not in NAME_VARIANTS]
    reverse_symbols = hash_order(reverse_symbols, key=lambda r: "which element " + r[0])[:30]
    digits = hash_order([n for n in TRAIN_NUMBERS if n >= 20], key=lambda n: f"digits {n}")[:40]
    mults = _pick_pairs([(a, b) for a in range(2, 13) for b in range(2, 13)], 60, "times")
    cats: list[Category] = [
        (
            "state_capital",
            [(f"What is the capital of the US state of {s}?", c) for s, c in US_STATE_CAPITALS],
        ),
        (
            "capital",
            [(f"Which city is the capital of {the(c)}?", cap) for c, cap, _ in capitals_rest],
        ),
        (
            "country_of_capital",
            [(f"Which country has {cap} as its capital?", c) for c, cap in reverse_capitals],
        ),
        (
            "element_symbol",
            [
                (f"What is the symbol of the element {n}?", s)
                for s, n in ELEMENTS
                if s not in train_syms
            ],
        ),
        (
            "element_name",
            [(f"Which element has the chemical symbol {s}?", n) for s, n in reverse_symbols],
        ),
        (
            "continent",
            [
                (f"On which continent would you find {the(c)}?", cont)
                for c, _, cont in continents_rest
            ]
            + [(f"Which continent is the city of {c} on?", cont) for c, cont in CITY_CONTINENTS],
        ),
        (
            "animal_class",
            [(f"Is {an(x)} a reptile, an amphibian or an insect?", k) for x, k in ANIMALS_RAI]
            + [(f"Is {an(n)} {an(x)} or {an(y)}?", x) for n, x, y in ANIMALS_TWO_WAY[:6]]
            + [(f"Is {an(n)} {an(y)} or {an(x)}?", x) for n, x, y in ANIMALS_TWO_WAY[6:]],
        ),
        (
            "number_in_words",
            [
                (f"Write the number {n} in words.", in_words(n))
                for n in HELDOUT_NUMBERS + HELDOUT_BIG_NUMBERS
            ]
            + [(f"Write {in_words(n)} using digits.", str(n)) for n in digits],
        ),
        (
            "past_participle",
            [(f"What is the past participle of {v}?", pp) for v, _, pp in VERBS if pp != "-"],
        ),
        (
            "past_tense",
            [(f"What is the simple past form of {v}?", p) for v, p, _ in _past_tense_verbs()[1]],
        ),
        ("plural", [(f"Give the plural form of {w}.", p) for w, p in PLURALS_HELDOUT]),
        (
            "comparison",
            [(f"What is the comparative form of {w}?", c) for w, c, _ in COMPARISONS]
            + [(f"What is the superlative form of {w}?", s) for w, _, s in COMPARISONS],
        ),
        ("sum", [(f"What is the sum of {a} and {b}?", str(a + b)) for a, b in sums]),
        (
            "difference",
            [(f"What do you get if you subtract {b} from {a}?", str(a - b)) for a, b in diffs],
        ),
        ("multiplication", [(f"What is {a} times {b}?", str(a * b)) for a, b in mults]),
        (
            "reverse_words",
            [
                (f"Put these words in reverse order: {' '.join(s)}", " ".join(reversed(s)))
                for s in _reversals(REVERSE_WORDS_HELDOUT, 50, "reverse order")
            ],
        ),
        ("antonym", [(f"What is the antonym of {w}?", o) for w, o in ANTONYMS_HELDOUT]),
        (
            "language",
            [
                (f"Which language do most people in {the(c)} speak?", lang)
                for c, lang in LANGUAGES_HELDOUT
            ],
        ),
        (
            "currency",
            [(f"What is the currency of {the(c)}?", cur) for c, cur in CURRENCIES_HELDOUT],
        ),
        (
            "color_mix",
            [(f"What color do you get by mixing {m}?", c) for m, c in COLOR_MIXES],
        ),
        (
            "collective_noun",
            [(f"What is a group of {a} called?", g) for a, g in COLLECTIVES],
        ),
        ("animal_sound", [(f"What sound does {an(x)} make?", s) for x, s in ANIMAL_SOUNDS]),
        ("space", [(q, a) for q, a in SPACE]),
        ("world_fact", [(q, a) for q, a in WORLD]),
        ("author", [(f"Who wrote {b}?", a) for b, a in AUTHORS]),
        ("painter", [(f"Who painted {p}?", a) for p, a in PAINTINGS]),
        ("calendar", _calendar()),
        (
            "spelling",
            [(f"Which word is spelled {' '.join(w)}?", w) for w in SPELLING_WORDS],
        ),
        ("shape", [(q, a) for q, a in SHAPES]),
    ]
    return cats


def _calendar() -> list[Pair]:
    out: list[Pair] = []
    for i, d in enumerate(DAYS):
        out.append((f"What day comes after {d}?", DAYS[(i + 1) % 7]))
        out.append((f"What day comes before {d}?", DAYS[(i - 1) % 7]))
        out.append((f"What day is two days after {d}?", DAYS[(i + 2) % 7]))
    for i, m in enumerate(MONTHS):
        out.append((f"What month comes after {m}?", MONTHS[(i + 1) % 12]))
        out.append((f"What month comes before {m}?", MONTHS[(i - 1) % 12]))
        out.append((f"What is the {ORDINALS[i]} month of the year?", m))
        if MONTH_DAYS[i] is not None:
            out.append((f"How many days are there in {m}?", str(MONTH_DAYS[i])))
    return out


# ---------------------------------------------------------------------------------------------
# Ordering, checks and output
# ---------------------------------------------------------------------------------------------


def stratified(categories: list[Category]) -> list[tuple[str, Pair]]:
    """All pairs, each category in its own hashed order, interleaved by position fraction."""
    items = []
    for ci, (name, pairs) in enumerate(categories):
        ordered = hash_order(pairs, key=lambda p: name + " " + p[0])
        n = len(ordered)
        for i, pair in enumerate(ordered):
            items.append((Fraction(2 * i + 1, 2 * n), ci, name, pair))
    items.sort(key=lambda t: (t[0], t[1]))
    return [(name, pair) for _, _, name, pair in items]


_ANSWER_OK = re.compile(r"[A-Za-z0-9]+( [A-Za-z0-9]+){0,2}")


def check(items: list[tuple[str, Pair]], what: str) -> None:
    seen: set[str] = set()
    for cat, (q, a) in items:
        if q in seen:
            raise SystemExit(f"{what}: question repeated: {q!r}")
        seen.add(q)
        if not _ANSWER_OK.fullmatch(a):
            raise SystemExit(f"{what}: answer {a!r} ({cat}: {q!r}) is not 1-3 plain words")
        if not q.isascii():
            raise SystemExit(f"{what}: question {q!r} is not ASCII")


def write(path: Path, name: str, description: str, items: list[tuple[str, Pair]]) -> None:
    """The file in the style of examples/: name, a folded description, then the pairs."""
    pairs = [{"question": q, "answer": a} for _, (q, a) in items]
    folded = textwrap.fill(description, width=94, initial_indent="  ", subsequent_indent="  ")
    text = (
        "# Generated by benchmarks/make_trivia.py; edit the tables there, not this file.\n"
        f"name: {name}\n"
        f"description: >\n{folded}\n"
        + yaml.safe_dump({"pairs": pairs}, sort_keys=False, allow_unicode=False, width=100)
    )
    if yaml.safe_load(text)["description"].strip() != description:
        raise SystemExit(f"{path}: the description does not survive YAML folding")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def summary(path: Path, items: list[tuple[str, Pair]]) -> str:
    words = {tok for _, (_, a) in items for tok in tokenize(a)}
    longest = max(len(tokenize(a)) for _, (_, a) in items)
    counts: dict[str, int] = {}
    for cat, _ in items:
        counts[cat] = counts.get(cat, 0) + 1
    cats = ", ".join(f"{c} {n}" for c, n in counts.items())
    return (
        f"{path.relative_to(ROOT)}: {len(items)} pairs, {len(words)} distinct answer words, "
        f"longest answer {longest} tokens\n    categories: {cats}"
    )


def main() -> int:
    train_all = stratified(train_categories())
    held_all = stratified(heldout_categories())
    check(train_all, "training set")
    check(held_all, "held-out set")
    if len(train_all) < TRAIN_SIZE or len(held_all) < HELDOUT_SIZE:
        raise SystemExit(f"too few pairs: {len(train_all)} training, {len(held_all)} held out")
    train_q = {q for _, (q, _) in train_all}
    shared = [q for _, (q, _) in held_all if q in train_q]
    if shared:
        raise SystemExit(f"held-out questions also in the training tables: {shared[:5]}")

    train = train_all[:TRAIN_SIZE]
    held = held_all[:HELDOUT_SIZE]
    files = []
    for n in SUBSETS:
        files.append(
            (
                ROOT / "examples" / f"trivia{n}.yaml",
                f"trivia{n}",
                f"The first {n} pairs of trivia1000.yaml: the same mix of categories, in the "
                "same order (generated by benchmarks/make_trivia.py).",
                train[:n],
            )
        )
    files.append(
        (
            ROOT / "examples" / "trivia1000.yaml",
            "trivia1000",
            "1,000 pairs of ordinary mixed trivia: capitals, element symbols, continents, "
            "animal classes, numbers in words, irregular plurals and past tenses, small sums "
            "and differences, word reversals, opposites, languages, currencies, colors and "
            "animal young. Answers are 1-3 words; many are shared by dozens of questions. "
            "Categories are interleaved so any prefix has the same mix (trivia250 and "
            "trivia500 are prefixes). Generated by benchmarks/make_trivia.py.",
            train,
        )
    )
    files.append(
        (
            ROOT / "examples" / "heldout" / "trivia950.yaml",
            "heldout_trivia950",
            "A held-out companion to trivia1000.yaml: 950 pairs of the same kind with other "
            "items and phrasings (US state capitals, countries of capitals, other elements, "
            "continents of cities, past participles, comparatives, multiplication, antonyms) "
            "and categories trivia1000 lacks (planets, authors, painters, animal sounds, "
            "group names, days and months, spelling, shapes). No question is shared with "
            "trivia1000.yaml. Generated by benchmarks/make_trivia.py.",
            held,
        )
    )
    for path, name, description, items in files:
        write(path, name, description, items)
        print(summary(path, items))
    return 0


if __name__ == "__main__":
    sys.exit(main())
