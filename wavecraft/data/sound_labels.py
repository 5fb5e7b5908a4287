"""Captions for game sound files, cleaned from their paths into natural phrases.

Game packages name their sounds well ("fauna/animal/horse_death1", "footsteps/gravel3") but not
as sentences. Each source has an ordered list of rules: a regular expression over the normalised
path (lower case, no extension, no take number) and a caption template filled from its groups.
A file no rule matches is left out of the set rather than captioned with a guess: interface
stingers and cryptic names ("fire/sz_3") would teach the model noise.
"""
from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Label:
    caption: str
    sound_class: str  # coarse class, used by the adherence metric
    labels: tuple[str, ...]


def normalise(path: str) -> str:
    """'audio/actor/fauna/animal/Horse_Death1.ogg' -> 'audio/actor/fauna/animal/horse_death'."""
    text = path.lower().replace("\\", "/")
    text = re.sub(r"\.(ogg|wav|flac|mp3)$", "", text)
    text = re.sub(r"(?:[._ -]?\d+[a-z]?)+$", "", text)  # take numbers: _11, 1, .2, _11a
    return re.sub(r"[ -]+", "_", text)


ANIMALS = {  # name -> (noun phrase, typical verb, class)
    "horse": ("a horse", "neighing", "horse"), "cattle": ("a cow", "mooing", "farm animal"),
    "chicken": ("a chicken", "clucking", "bird"), "elephant": ("an elephant", "trumpeting", "wild animal"),
    "lion": ("a lion", "roaring", "wild animal"), "pig": ("a pig", "grunting", "farm animal"),
    "sheep": ("a sheep", "bleating", "farm animal"), "goat": ("a goat", "bleating", "farm animal"),
    "camel": ("a camel", "groaning", "wild animal"), "flamingo": ("a flamingo", "squawking", "bird"),
    "peacock": ("a peacock", "calling", "bird"), "animal": ("an animal", "crying out", "wild animal"),
    "dog": ("a dog", "barking", "dog"), "crow": ("a crow", "cawing", "bird"),
}
MATERIAL_WORDS = {"rock": "rock", "stone": "stone", "hard": "a hard floor", "tile": "tiles", "wood": "wood",
                  "metal": "metal", "dirt": "dirt", "grass": "grass", "gravel": "gravel", "sand": "sand",
                  "snow": "snow", "ice": "ice", "glass": "glass", "carpet": "carpet"}
LANGUAGES = {"greek": "ancient Greek", "latin": "Latin", "persian": "Old Persian", "napatan": "an ancient African language"}


def _animal(m: re.Match) -> Label | None:
    name, action = m.group("animal"), m.group("action") or ""
    if name not in ANIMALS:
        return None
    noun, verb, cls = ANIMALS[name]
    if action.startswith("death"):
        return Label(f"{noun} dying", cls, (name, "death"))
    if action == "attack":
        return Label(f"{noun} {verb} aggressively", cls, (name, "attack"))
    return Label(f"{noun} {verb}", cls, (name,))


def _material(word: str) -> str:
    return MATERIAL_WORDS.get(word, word)


Rule = tuple[str, object]  # (regex, Label | callable(match) -> Label | None)

RULES_0AD: list[Rule] = [
    (r"fauna/(?:animal|death)/(?:death_)?(?P<animal>[a-z]+?)(?:_(?P<action>death_generic|death|attack|idle|select|call|squeal_move))?$", _animal),
    (r"voice/global/civ_dog_bark$", Label("a dog barking", "dog", ("dog", "bark"))),
    (r"actor/gate/stonegate_(?P<a>open|close)$", lambda m: Label(f"a heavy stone gate {m['a']}ing".replace("closeing", "closing"), "door", ("gate", m["a"]))),
    (r"human/death/(?P<who>male|female)?_?death$", lambda m: Label(
        {"male": "a man screaming as he dies", "female": "a woman screaming as she dies"}.get(m["who"], "a person crying out in pain"), "scream", ("scream", "death"))),
    (r"footsteps/foo?[rt]step_(?P<mat>[a-z]+)_(?P<verb>running|walking)$", lambda m: Label(
        f"footsteps of someone {m['verb']} on {_material(m['mat'])}", "footsteps", ("footsteps", m["mat"], m["verb"]))),
    (r"movement/hstep_(?P<run>run_)?dirt_mn$", lambda m: Label(
        f"footsteps of someone {'running' if m['run'] else 'walking'} on dirt", "footsteps", ("footsteps", "dirt"))),
    (r"mounted/death/death_horse$", Label("a horse dying", "horse", ("horse", "death"))),
    (r"mounted/movement/mstep$", Label("hooves of a horse trotting", "horse", ("horse", "hooves"))),
    (r"ship/(?:ship_move|smove|warship_move)$", Label("a wooden ship creaking as it sails", "ship", ("ship",))),
    (r"ship/warship_death$", Label("a wooden ship breaking apart", "crash", ("ship", "crash"))),
    (r"singlesteps/fs_(?P<mat>[a-z]+)$", lambda m: Label(f"a footstep on {_material(m['mat'])}", "footsteps", ("footsteps", m["mat"]))),
    (r"ambient/building/amb_(?P<w>farm|port|trade)$", lambda m: Label(
        {"farm": "farmyard ambience with animals", "port": "the ambience of a busy harbour",
         "trade": "the ambience of a busy market"}[m["w"]], "ambience", ("ambience", m["w"]))),
    (r"dayscape/day_temperate(?:_gen)?$", Label("birds singing in the countryside", "ambience", ("ambience", "birds"))),
    (r"dayscape/day_tropical$", Label("a tropical jungle with birds and insects", "ambience", ("ambience", "jungle"))),
    (r"water/river_(?P<s>fast|med|raging|slow)$", lambda m: Label(
        {"fast": "a fast-flowing river", "med": "a river flowing", "raging": "a raging river",
         "slow": "a gently flowing stream"}[m["s"]], "water", ("water", "river"))),
    (r"water/waterfall$", Label("a waterfall", "water", ("water", "waterfall"))),
    (r"water/wave(?:crash|rocky)?$", Label("waves crashing on rocks", "waves", ("waves", "sea"))),
    (r"weather/rain$", Label("rain", "rain", ("rain",))),
    (r"weather/snowstorm$", Label("a snowstorm with howling wind", "wind", ("wind", "snowstorm"))),
    (r"weather/thunder$", Label("thunder", "thunder", ("thunder",))),
    (r"weather/wind(?P<w>gust|leaves|storm)?$", lambda m: Label(
        {None: "wind blowing", "gust": "a gust of wind", "leaves": "wind rustling leaves",
         "storm": "a windstorm"}[m["w"]], "wind", ("wind",))),
    (r"destruction/building_collapse_large$", Label("a building collapsing", "crash", ("crash", "collapse"))),
    (r"destruction/explode_debris$", Label("an explosion with falling debris", "explosion", ("explosion",))),
    (r"impact/arrow(?:_(?P<mat>dirt|metal|stone|wood))?$", lambda m: Label(
        f"an arrow hitting {_material(m['mat'] or 'a target')}", "impact", ("impact", "arrow"))),
    (r"impact/flesh(?:imp|stab)$", Label("a blade stabbing flesh", "impact", ("impact", "stab"))),
    (r"impact/shield_(?P<mat>metal|wood)$", lambda m: Label(
        f"a weapon striking a {'metal' if m['mat'] == 'metal' else 'wooden'} shield", "impact", ("impact", "shield"))),
    (r"impact/siegeprojectilehit$", Label("a heavy boulder crashing into a wall", "impact", ("impact", "boulder"))),
    (r"impact/sling_(?P<mat>metal|stone|wood)$", lambda m: Label(
        f"a sling stone hitting {_material(m['mat'])}", "impact", ("impact", "sling"))),
    (r"siege/ballist(?:_rome)?_attack$", Label("a ballista firing a bolt", "weapon", ("weapon", "ballista"))),
    (r"siege/onager_shooting$", Label("a catapult launching a stone", "weapon", ("weapon", "catapult"))),
    (r"siege/(?:onager|ram)_mov(?:e|ing)$", Label("a heavy wooden siege engine rolling", "vehicle", ("vehicle", "wooden wheels"))),
    (r"siege/ram_attack$", Label("a battering ram striking a gate", "impact", ("impact", "ram"))),
    (r"weapon/musket$", Label("a musket gunshot", "gunshot", ("gunshot", "musket"))),
    (r"weapon/arrowfly$", Label("an arrow whooshing through the air", "whoosh", ("whoosh", "arrow"))),
    (r"weapon/bow_attack$", Label("a bow shooting an arrow", "weapon", ("weapon", "bow"))),
    (r"weapon/jav_attack$", Label("a javelin being thrown", "whoosh", ("whoosh", "javelin"))),
    (r"weapon/(?:pike|spear)_attack$", Label("a spear thrust", "weapon", ("weapon", "spear"))),
    (r"weapon/sling(?:_attack)?$", Label("a sling whirling and releasing a stone", "weapon", ("weapon", "sling"))),
    (r"weapon/sword_attack$", Label("a sword swinging", "weapon", ("weapon", "sword"))),
    (r"weapon/swordhit$", Label("swords clashing", "sword", ("sword", "clash"))),
    (r"construction/con_(?P<w>saw|stone|wood)$", lambda m: Label(
        {"saw": "sawing wood", "stone": "chiselling stone", "wood": "hammering wood"}[m["w"]], "tools", ("tools", m["w"]))),
    (r"farming/hoe$", Label("a hoe digging soil", "tools", ("tools", "digging"))),
    (r"foraging/leaves$", Label("rustling leaves", "rustle", ("rustle", "leaves"))),
    (r"lumbering/lumber_tree$", Label("chopping wood with an axe", "tools", ("tools", "axe"))),
    (r"mining/mine_(?P<w>metal|stone)$", lambda m: Label(
        f"a pickaxe striking {'metal ore' if m['w'] == 'metal' else 'rock'}", "tools", ("tools", "pickaxe"))),
    (r"voice/(?P<lang>greek|latin|persian|napatan)/civ/civ_(?P<who>male|female)_[a-z_]+$", lambda m: Label(
        f"a {'man' if m['who'] == 'male' else 'woman'} saying a short phrase in {LANGUAGES[m['lang']]}",
        "speech", ("speech", m["who"], m["lang"]))),
]

_GUNS = {"pistol": "a pistol shot", "rifle": "rifle shots", "smg": "submachine gun fire", "shotgun": "a shotgun blast",
         "chaingun": "machine gun fire", "heavybolter": "heavy machine gun fire", "sniper": "a sniper rifle shot"}
RULES_UFOAI: list[Rule] = [
    (r"aliens/[a-z]+/(?P<a>attack|die|hurt|move)$", lambda m: Label(
        {"attack": "a monster snarling as it attacks", "die": "a monster dying", "hurt": "a monster growling in pain",
         "move": "a creature moving"}[m["a"]], "creature", ("creature", m["a"]))),
    (r"ambience/(?:alien_?)?ventilation$", Label("a ventilation system humming", "machine", ("machine", "hum"))),
    (r"ambience/(?:alien)?machinery$", Label("machinery humming", "machine", ("machine",))),
    (r"ambience/fire$", Label("a fire burning", "fire", ("fire",))),
    (r"ambience/thunder$", Label("thunder", "thunder", ("thunder",))),
    (r"ambience/water$", Label("flowing water", "water", ("water",))),
    (r"ambience/rain$", Label("rain", "rain", ("rain",))),
    (r"ambience/sparks$", Label("electric sparks crackling", "electric", ("electric", "sparks"))),
    (r"ambience/arcticwind$", Label("icy wind blowing", "wind", ("wind",))),
    (r"ambience/cricket_loop$", Label("crickets chirping at night", "insect", ("insect", "crickets"))),
    (r"ambience/creak$", Label("a wooden creak", "creak", ("creak",))),
    (r"ambience/firesoft$", Label("a fire burning softly", "fire", ("fire",))),
    (r"ambience/hum$", Label("an electrical hum", "machine", ("machine", "hum"))),
    (r"(?:civilians|soldiers)/(?:civ)?(?P<who>fem|female|male)(?P<what>death|hurt|scream)[a-z]*$", lambda m: Label(
        ("a woman" if m["who"].startswith("fem") else "a man")
        + {"death": " screaming", "hurt": " groaning in pain", "scream": " screaming"}[m["what"]], "scream",
        ("scream", m["what"]))),
    (r"doors/door\d*_?(?P<a>open|close)$", lambda m: Label(f"a door {'opening' if m['a'] == 'open' else 'closing'}", "door", ("door", m["a"]))),
    (r"footsteps/(?P<mat>carpet|dirt|grass|gravel|metal|sand|snow|stone|tile|wood)$", lambda m: Label(
        f"a footstep on {_material(m['mat'])}", "footsteps", ("footsteps", m["mat"]))),
    (r"footsteps/splash$", Label("a footstep splashing in water", "footsteps", ("footsteps", "water"))),
    (r"footsteps/hitground$", Label("a body hitting the ground", "impact", ("impact", "body"))),
    (r"impact/bullet_impact$", Label("a bullet hitting a wall", "impact", ("impact", "bullet"))),
    (r"misc/break(?P<w>glass|wood|metal)$", lambda m: Label(
        {"glass": "glass shattering", "wood": "wood splintering", "metal": "metal breaking"}[m["w"]],
        "glass" if m["w"] == "glass" else "impact", ("break", m["w"]))),
    (r"weapons/bullet_(?P<g>pistol|rifle|smg|shotgun|chaingun|heavybolter|sniper)(?:_\d+x)?$", lambda m: Label(
        _GUNS[m["g"]], "gunshot", ("gunshot", m["g"]))),
    (r"weapons/explosion_grenade$", Label("a grenade explosion", "explosion", ("explosion", "grenade"))),
    (r"weapons/grenade_launcher$", Label("a grenade launcher firing", "gunshot", ("gunshot", "launcher"))),
    (r"weapons/flamer[a-z_]*$", Label("a flamethrower roaring", "fire", ("fire", "flamethrower"))),
    (r"weapons/(?:laser|plasma)_[a-z]+$", Label("a sci-fi laser gun firing", "laser", ("laser",))),
    (r"weapons/reload_[a-z]+$", Label("a gun being reloaded", "reload", ("reload", "gun"))),
    (r"weapons/melee_swoosh$", Label("a blade swooshing through the air", "whoosh", ("whoosh", "blade"))),
    (r"weapons/ugv_cannon_fire$", Label("a cannon firing", "explosion", ("explosion", "cannon"))),
    (r"ugv/diesel_(?P<a>start|stop)$", lambda m: Label(f"a diesel engine {'starting' if m['a'] == 'start' else 'stopping'}",
                                                      "engine", ("engine", "diesel"))),
    (r"seq/humanflyby$", Label("an aircraft flying past", "aircraft", ("aircraft",))),
]

RULES_MINETEST: list[Rule] = [
    (r"default_(?P<mat>[a-z]+)_footstep$", lambda m: Label(
        "a footstep splashing in water" if m["mat"] == "water" else f"a footstep on {_material(m['mat'])}",
        "footsteps", ("footsteps", m["mat"]))),
    (r"default_break_glass$", Label("glass breaking", "glass", ("glass", "break"))),
    (r"default_chest_(?P<a>open|close)$", lambda m: Label(f"a wooden chest {'opening' if m['a'] == 'open' else 'closing'}", "door", ("chest",))),
    (r"default_cool_lava$", Label("lava hissing as it cools", "hiss", ("hiss", "lava"))),
    (r"default_dig_(?:choppy|cracky|crumbly)$", Label("digging", "tools", ("tools", "digging"))),
    (r"default_gravel_dig$", Label("digging in gravel", "tools", ("tools", "gravel"))),
    (r"default_furnace_active$", Label("a furnace burning", "fire", ("fire", "furnace"))),
    (r"default_tool_breaks$", Label("a tool snapping", "impact", ("impact", "break"))),
    (r"player_damage$", Label("a man grunting in pain", "scream", ("scream", "pain"))),
    (r"doors_(?P<kind>door|fencegate|glass_door|steel_door)_(?P<a>open|close)$", lambda m: Label(
        "a " + {"door": "wooden door", "fencegate": "wooden gate", "glass_door": "glass door", "steel_door": "steel door"}[m["kind"]]
        + (" opening" if m["a"] == "open" else " closing"), "door", ("door", m["a"]))),
    (r"xpanes_steel_bar_door_(?P<a>open|close)$", lambda m: Label(f"a steel gate {'opening' if m['a'] == 'open' else 'closing'}", "door", ("door",))),
    (r"env_sounds_lava$", Label("lava bubbling", "water", ("bubbling", "lava"))),
    (r"env_sounds_water$", Label("flowing water", "water", ("water",))),
    (r"fire_extinguish_flame$", Label("a fire being put out with a hiss", "fire", ("fire", "hiss"))),
    (r"fire_(?:fire|large|small)$", Label("a fire crackling", "fire", ("fire",))),
    (r"fire_flint_and_steel$", Label("striking flint and steel", "impact", ("impact", "flint"))),
    (r"tnt_explode$", Label("an explosion", "explosion", ("explosion",))),
    (r"tnt_gunpowder_burning$", Label("a fuse fizzing", "fire", ("fire", "fuse"))),
    (r"carts_cart_moving$", Label("a mine cart rolling on rails", "vehicle", ("vehicle", "cart"))),
]

_DRUM_WORDS = {"bass": "bass drum", "snare": "snare drum", "cymbal": "cymbal", "splash": "splash cymbal",
               "tom": "tom drum", "cowbell": "cowbell", "roll": "drum roll", "heavy": "heavy kick drum"}
RULES_SONIC_PI: list[Rule] = [
    (r"(?:^|/)bd(?:_[a-z0-9]+)?$", Label("a kick drum hit", "drum", ("drum", "kick"))),
    (r"(?:^|/)sn_[a-z]+$", Label("a snare drum hit", "drum", ("drum", "snare"))),
    (r"(?:^|/)drum_(?P<w>[a-z]+)(?:_[a-z_]+)?$", lambda m: Label(
        f"a {_DRUM_WORDS.get(m['w'], m['w'])} hit" if m["w"] != "roll" else "a drum roll", "drum", ("drum", m["w"]))),
    (r"(?:^|/)elec_(?P<w>[a-z_]+)$", lambda m: Label(f"an electronic {m['w'].replace('_', ' ')} sound", "electronic", ("electronic", m["w"]))),
    (r"(?:^|/)tabla_[a-z_]+$", Label("a tabla drum stroke", "drum", ("drum", "tabla"))),
    (r"(?:^|/)loop_(?P<w>amen|amen_full|breakbeat)$", Label("a breakbeat drum loop", "drum loop", ("drum loop",))),
    (r"(?:^|/)loop_tabla$", Label("a tabla rhythm", "drum loop", ("drum loop", "tabla"))),
    (r"(?:^|/)loop_(?:compus|perc|industrial|electric|mika|garzul|safari)$", Label("a percussion loop", "drum loop", ("drum loop",))),
    (r"(?:^|/)misc_crow$", Label("a crow cawing", "bird", ("bird", "crow"))),
    (r"(?:^|/)misc_burp$", Label("a person burping", "human", ("human", "burp"))),
    (r"(?:^|/)misc_cineboom$", Label("a deep cinematic boom", "explosion", ("boom",))),
    (r"(?:^|/)perc_bell$", Label("a bell being struck", "bell", ("bell",))),
    (r"(?:^|/)perc_snap$", Label("a finger snap", "human", ("snap",))),
    (r"(?:^|/)perc_door$", Label("a door creaking", "door", ("door", "creak"))),
    (r"(?:^|/)perc_swoosh$|(?:^|/)ambi_swoosh$|(?:^|/)ambi_dark_woosh$", Label("a whoosh", "whoosh", ("whoosh",))),
    (r"(?:^|/)vinyl_(?P<w>backspin|hiss|rewind|scratch)$", lambda m: Label(
        {"backspin": "a vinyl record spun backwards", "hiss": "vinyl record crackle and hiss",
         "rewind": "a tape rewinding", "scratch": "a DJ scratching a vinyl record"}[m["w"]], "vinyl", ("vinyl",))),
    (r"(?:^|/)glitch_(?:perc|robot)$|(?:^|/)mehackit_robot$", Label("glitchy robotic electronic sounds", "electronic", ("electronic", "glitch"))),
    (r"(?:^|/)mehackit_phone$", Label("an electronic phone tone", "telephone", ("telephone",))),
]

RULES = {"0ad": RULES_0AD, "ufoai": RULES_UFOAI, "minetest": RULES_MINETEST, "sonic_pi": RULES_SONIC_PI}


def label_path(source: str, path: str) -> Label | None:
    """The caption for file `path` of `source`, or None when no rule knows it."""
    key = normalise(path)
    for pattern, result in RULES[source]:
        m = re.search(pattern, key)
        if m:
            label = result(m) if callable(result) else result
            if label is not None:
                return label
    return None
