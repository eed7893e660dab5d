"""Build the tiny story-continuation checkpoint that ships in ``resources/demo``.

The demo model lets ONNX Forge show a full conversion (fp32 and int4) in seconds, offline, without
downloading anything. Everything here is synthetic and deterministic:

1. A small grammar writes simple children's stories ("Tom goes to the park. He sees a big dog. ...").
2. A byte-level BPE tokenizer is trained on that text and saved as a ``PreTrainedTokenizerFast``.
3. A tiny ``LlamaForCausalLM`` is trained from random init on the stories for about three minutes on CPU.
4. Held-out stories (for perplexity checks) and general calibration prose are written to ``resources/text``.

Usage::

    python scripts/make_demo.py                           # 800 steps: about 3 minutes on 2 free CPU cores
    python scripts/make_demo.py --minutes 1 --out /tmp/demo  # train for a wall-clock budget instead

The default (a fixed step count) is reproducible: same seed, same stories, same tokenizer, same weights on
one machine. With ``--minutes`` the step count depends on how fast the machine is; it is printed so the run
can be repeated with ``--steps``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "resources" / "demo"
TEXT_DIR = REPO_ROOT / "resources" / "text"

SEED = 1234
HELDOUT_SEED = 98765
CALIBRATION_SEED = 2024

# Special tokens, in id order: <unk>=0, <s>=1, </s>=2, <pad>=3.
UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = [UNK, BOS, EOS, PAD]

# A story-continuation model has no roles: the chat renders as <s> followed by the user messages, joined by
# spaces, with no role markers; system and assistant messages are left out. Only basic Jinja is used so that
# transformers and onnxruntime-genai render the same string.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ message['content'] }}{% if not loop.last %}{{ ' ' }}{% endif %}"
    "{% endif %}"
    "{% endfor %}"
)


# --------------------------------------------------------------------------------------------------
# Story grammar
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Character:
    name: str
    subject: str  # he / she
    object: str  # him / her
    possessive: str  # his / her


@dataclass(frozen=True)
class Thing:
    noun: str
    adjectives: tuple[str, ...]
    states: tuple[str, ...]  # "The dog is happy."
    actions: tuple[str, ...]  # "Tom plays with the dog." (third person, followed by "the <noun>")


@dataclass(frozen=True)
class Place:
    name: str  # with its article: "the park"
    things: tuple[Thing, ...]
    activities: tuple[str, ...]  # base form, after "They" or "likes to": "run on the grass"


def _boy(name: str) -> Character:
    return Character(name, "he", "him", "his")


def _girl(name: str) -> Character:
    return Character(name, "she", "her", "her")


CHARACTERS = (
    _boy("Tom"), _boy("Ben"), _boy("Sam"), _boy("Leo"),
    _girl("Anna"), _girl("Mia"), _girl("Lily"), _girl("Emma"),
)  # fmt: skip

ANIMAL_STATES = ("happy", "hungry", "sleepy", "funny", "friendly")

PLACES = (
    Place(
        "the park",
        (
            Thing("dog", ("big", "small", "brown", "white"), ANIMAL_STATES, ("plays with", "pets", "runs with")),
            Thing("ball", ("red", "blue", "big", "yellow"), ("soft", "new", "round"), ("kicks", "throws", "catches")),
            Thing("bird", ("small", "blue", "little"), ("happy", "hungry", "loud"), ("looks at", "feeds", "waves at")),
            Thing("kite", ("red", "green", "big"), ("new", "pretty", "fast"), ("flies", "holds", "looks at")),
        ),
        ("run on the grass", "play on the swings", "climb a tree", "play ball"),
    ),
    Place(
        "the shop",
        (
            Thing("apple", ("red", "green", "big"), ("sweet", "fresh", "good"), ("buys", "picks up", "eats")),
            Thing("cake", ("big", "pink", "small"), ("sweet", "soft", "yummy"), ("buys", "looks at", "wants")),
            Thing("toy car", ("red", "blue", "little"), ("new", "fast", "shiny"), ("buys", "picks up", "wants")),
            Thing("hat", ("blue", "yellow", "big"), ("soft", "nice", "warm"), ("tries on", "buys", "picks up")),
        ),
        ("look at the toys", "buy some milk", "get some bread", "pick some fruit"),
    ),
    Place(
        "the school",
        (
            Thing("book", ("new", "big", "red"), ("fun", "nice", "good"), ("reads", "opens", "looks at")),
            Thing("teacher", ("kind", "nice", "new"), ("happy", "friendly", "kind"), ("talks to", "waves at", "helps")),
            Thing("cat", ("small", "black", "little"), ANIMAL_STATES, ("pets", "looks at", "plays with")),
            Thing("picture", ("big", "pretty", "funny"), ("nice", "bright", "pretty"), ("draws", "looks at", "paints")),
        ),
        ("read a book", "draw a picture", "sing a song", "play a game"),
    ),
    Place(
        "the beach",
        (
            Thing("shell", ("pink", "white", "big"), ("pretty", "shiny", "small"), ("picks up", "looks at", "finds")),
            Thing("crab", ("little", "red", "small"), ("funny", "fast", "happy"), ("looks at", "follows", "watches")),
            Thing("boat", ("white", "big", "red"), ("fast", "pretty", "new"), ("looks at", "waves at", "watches")),
            Thing(
                "sand castle", ("big", "tall", "little"), ("nice", "pretty", "tall"), ("builds", "looks at", "fixes")
            ),
        ),
        ("swim in the sea", "build a sand castle", "run on the sand", "look for shells"),
    ),
    Place(
        "the farm",
        (
            Thing("cow", ("big", "brown", "black"), ANIMAL_STATES, ("feeds", "pets", "looks at")),
            Thing("pig", ("pink", "little", "fat"), ANIMAL_STATES, ("feeds", "pets", "plays with")),
            Thing("horse", ("big", "brown", "white"), ANIMAL_STATES, ("rides", "feeds", "pets")),
            Thing("hen", ("red", "little", "brown"), ANIMAL_STATES, ("feeds", "follows", "looks at")),
        ),
        ("feed the animals", "pick some eggs", "ride on the tractor", "play in the barn"),
    ),
    Place(
        "the zoo",
        (
            Thing("lion", ("big", "old", "yellow"), ANIMAL_STATES, ("looks at", "waves at", "watches")),
            Thing("monkey", ("little", "brown", "funny"), ANIMAL_STATES, ("looks at", "waves at", "laughs at")),
            Thing("elephant", ("big", "gray", "old"), ANIMAL_STATES, ("looks at", "feeds", "watches")),
            Thing("bear", ("big", "brown", "black"), ANIMAL_STATES, ("looks at", "waves at", "watches")),
        ),
        ("see the animals", "eat ice cream", "look at the birds", "walk around"),
    ),
    Place(
        "the garden",
        (
            Thing("flower", ("red", "yellow", "pretty"), ("pretty", "new", "tall"), ("smells", "waters", "picks")),
            Thing("frog", ("green", "little", "fat"), ANIMAL_STATES, ("looks at", "catches", "follows")),
            Thing("bee", ("little", "busy", "yellow"), ("busy", "happy", "loud"), ("looks at", "watches", "follows")),
            Thing("tree", ("tall", "green", "old"), ("big", "tall", "green"), ("climbs", "sits under", "looks at")),
        ),
        ("water the flowers", "dig in the dirt", "play in the grass", "look for bugs"),
    ),
)

FOODS = ("an apple", "a sandwich", "a cookie", "a banana", "some bread")
RELATIVES = ("mom", "dad", "grandma", "grandpa")
FEELINGS = ("happy", "glad", "excited")


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def capitalize(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


class StoryWriter:
    """Writes short, simple stories from the grammar above. Same seed, same stories."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def story(self) -> str:
        rng = self.rng
        hero = rng.choice(CHARACTERS)
        friend = rng.choice([c for c in CHARACTERS if c != hero])
        place = rng.choice(PLACES)
        he = capitalize(hero.subject)

        sentences = self._opening(hero, place)
        for thing in rng.sample(place.things, k=rng.choice((1, 1, 2))):
            adjective = rng.choice(thing.adjectives)
            sentences.append(f"{he} sees {with_article(f'{adjective} {thing.noun}')}.")
            sentences.append(f"The {thing.noun} is {rng.choice(thing.states)}.")
            sentences.append(f"{hero.name} {rng.choice(thing.actions)} the {thing.noun}.")
        if rng.random() < 0.4:
            sentences.append(
                rng.choice((f"{hero.name} is very {rng.choice(FEELINGS)}.", f"{he} smiles.", f"{he} laughs."))
            )

        has_friend = rng.random() < 0.5
        if has_friend:
            sentences.append(f"Then {friend.name} comes to {place.name} too.")
            if rng.random() < 0.5:
                sentences.append(f'{friend.name} says, "Hello, {hero.name}!"')
            sentences.append(f"They {rng.choice(place.activities)} together.")
        elif rng.random() < 0.5:
            sentences.append(f"{hero.name} likes to {rng.choice(place.activities)}.")

        if rng.random() < 0.35:
            sentences.extend(self._problem(hero, friend if has_friend else None))
        sentences.extend(self._ending(hero, place))
        return " ".join(sentences)

    def _opening(self, hero: Character, place: Place) -> list[str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.6:
            return [f"{hero.name} goes to {place.name}."]
        if roll < 0.75:
            return [f"One day, {hero.name} goes to {place.name}."]
        if roll < 0.9:
            return [f"It is a {rng.choice(('sunny', 'nice', 'warm'))} day.", f"{hero.name} goes to {place.name}."]
        return [f"{hero.name} and {hero.possessive} {rng.choice(RELATIVES)} go to {place.name}."]

    def _problem(self, hero: Character, friend: Character | None) -> list[str]:
        rng = self.rng
        he = capitalize(hero.subject)
        kind = rng.randrange(3)
        if kind == 0:
            return ["Then it starts to rain.", f"{hero.name} is sad.", "Soon the rain stops and the sun comes out."]
        if kind == 1:
            helper = friend.name if friend else f"{capitalize(hero.possessive)} {rng.choice(RELATIVES)}"
            return [
                f"{hero.name} falls down.",
                f"{he} cries a little.",
                f"{helper} helps {hero.object} up.",
                f"Now {hero.subject} feels better.",
            ]
        return [f"{hero.name} is hungry.", f"{he} eats {rng.choice(FOODS)}."]

    def _ending(self, hero: Character, place: Place) -> list[str]:
        rng = self.rng
        he = capitalize(hero.subject)
        roll = rng.random()
        if roll < 0.4:
            return [f"At the end of the day, {hero.name} goes home.", f"{he} is tired but happy."]
        if roll < 0.6:
            return [f"{hero.name} loves {place.name}."]
        if roll < 0.8:
            return [f"{he} wants to come back tomorrow."]
        return ["It is a good day."]


def write_stories(seed: int, count: int) -> list[str]:
    writer = StoryWriter(seed)
    return [writer.story() for _ in range(count)]


def unique_stories(seed: int, count: int, exclude: set[str]) -> list[str]:
    """Stories from ``seed`` that are not in ``exclude`` (so held-out text really is unseen)."""
    writer = StoryWriter(seed)
    stories: list[str] = []
    seen = set(exclude)
    while len(stories) < count:
        story = writer.story()
        if story not in seen:
            seen.add(story)
            stories.append(story)
    return stories


# --------------------------------------------------------------------------------------------------
# Calibration prose: general, varied English for offline quantization calibration
# --------------------------------------------------------------------------------------------------

FACTS: dict[str, tuple[str, ...]] = {
    "weather": (
        "In winter the days are short and the nights are long.",
        "Snow falls when the air is cold enough for water to freeze.",
        "A rainbow appears when sunlight passes through drops of rain.",
        "Strong winds can bend trees and blow leaves across the road.",
        "Spring brings warmer days, and many plants begin to grow again.",
        "Clouds are made of tiny drops of water or small pieces of ice.",
        "Thunder is the sound made by lightning as it heats the air.",
        "In summer many people go to the sea to swim and rest.",
        "Fog forms when warm, wet air meets a cold surface near the ground.",
        "A weather forecast tells us whether to take an umbrella.",
    ),
    "animals": (
        "Cows eat grass and give milk that people drink every day.",
        "Bees carry pollen from flower to flower and make honey.",
        "An owl can turn its head very far and hunts at night.",
        "Whales are the largest animals that have ever lived on Earth.",
        "A cat sleeps for many hours during the day.",
        "Dogs have a strong sense of smell and can follow a trail for miles.",
        "Birds build nests from twigs, grass, and mud.",
        "Frogs start their lives as tadpoles swimming in ponds.",
        "Elephants live in family groups led by the oldest female.",
        "Many birds fly south in autumn to find warmer weather.",
    ),
    "home": (
        "To make a cup of tea, boil the water and let the leaves steep for a few minutes.",
        "Bread is made from flour, water, salt, and yeast.",
        "It is a good idea to wash your hands before you cook.",
        "A clean kitchen makes cooking easier and safer.",
        "Many families eat dinner together in the evening.",
        "Fresh vegetables keep longer when they are stored in a cool place.",
        "Soup is a warm meal that is easy to make in a large pot.",
        "Open the window for a while to let fresh air into the room.",
        "A small garden can grow tomatoes, beans, and herbs.",
        "Turn off the lights when you leave a room to save energy.",
    ),
    "science": (
        "Water boils at one hundred degrees Celsius at sea level.",
        "The Earth goes around the Sun once every year.",
        "The Moon does not make its own light; it reflects light from the Sun.",
        "Plants use sunlight, water, and air to make their food.",
        "Sound travels through air as a wave of pressure.",
        "Ice is lighter than liquid water, so it floats.",
        "A magnet can pull on things made of iron.",
        "The heart pumps blood through the whole body.",
        "Light moves faster than anything else we know.",
        "Gravity is the force that makes things fall to the ground.",
    ),
    "technology": (
        "A computer follows instructions written in a program.",
        "Phones today can take photos, play music, and show maps.",
        "The internet connects millions of computers around the world.",
        "A battery stores energy so that a device can work without a cable.",
        "Software updates often fix problems and add new features.",
        "A password should be long and hard for others to guess.",
        "Engineers test a new machine many times before it is sold.",
        "A printer puts words and pictures from a screen onto paper.",
        "Large files take longer to download on a slow connection.",
        "Good tools save time and make hard work a little easier.",
    ),
    "travel": (
        "A train can carry hundreds of people from one city to another.",
        "Before a long trip, it helps to pack a bag the night before.",
        "Maps show roads, rivers, mountains, and towns.",
        "Many old cities have narrow streets and small squares.",
        "Airports are busy places where people wait for their flights.",
        "A bicycle is a cheap and healthy way to get around town.",
        "Some people like to visit museums when they travel.",
        "The bus stops at the corner every ten minutes.",
        "Walking in the mountains can be hard, but the views are beautiful.",
        "A hotel room usually has a bed, a desk, and a small bathroom.",
    ),
    "work": (
        "Teachers help students learn to read, write, and count.",
        "A doctor listens to the patient before giving advice.",
        "Farmers get up early to care for their animals and fields.",
        "A good team shares ideas and helps each other finish the job.",
        "Writing a short list each morning can make a busy day easier.",
        "Many people work in offices, shops, and factories.",
        "A meeting is more useful when everyone knows its goal.",
        "Builders use bricks, wood, and steel to make houses.",
        "Firefighters train hard so they are ready for an emergency.",
        "Taking short breaks during work helps people stay focused.",
    ),
    "time": (
        "There are seven days in a week and twelve months in a year.",
        "A day has twenty-four hours, and an hour has sixty minutes.",
        "Most clocks show the time with two hands that move in a circle.",
        "The weekend is Saturday and Sunday for many people.",
        "A calendar helps us remember birthdays and holidays.",
        "The sun rises in the east and sets in the west.",
        "Some months have thirty days and others have thirty-one.",
        "People often make plans for the new year in January.",
        "A century is one hundred years long.",
        "Long ago, people told the time by looking at the sun.",
    ),
}

NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip

LETTER_OPENINGS = ("Dear friend,", "Hello everyone,", "Dear neighbor,", "Hi there,")
LETTER_BODIES = (
    "thank you for the lovely flowers you left at our door.",
    "the library will be closed on Monday while the floors are cleaned.",
    "we are planning a small party in the garden next Saturday afternoon.",
    "please remember to bring a coat, because the evenings are getting cold.",
    "the new bakery on the corner opens at seven every morning.",
    "our school will hold a book sale at the end of the month.",
)
LETTER_CLOSINGS = ("See you soon.", "Best wishes.", "Take care.", "With love.")


class CalibrationWriter:
    """Writes varied lines of plain English: fact paragraphs, arithmetic, short notes and stories."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.stories = StoryWriter(seed + 1)

    def line(self) -> str:
        roll = self.rng.random()
        if roll < 0.55:
            return self._facts()
        if roll < 0.7:
            return self._arithmetic()
        if roll < 0.8:
            return self._letter()
        return self.stories.story()

    def _facts(self) -> str:
        topic = self.rng.choice(sorted(FACTS))
        return " ".join(self.rng.sample(FACTS[topic], k=self.rng.randint(2, 4)))

    def _arithmetic(self) -> str:
        sentences = []
        for _ in range(self.rng.randint(2, 3)):
            a, b = self.rng.randint(0, 10), self.rng.randint(0, 10)
            if self.rng.random() < 0.5:
                sentences.append(f"{capitalize(NUMBER_WORDS[a])} plus {NUMBER_WORDS[b]} is {NUMBER_WORDS[a + b]}.")
            else:
                big, small = max(a, b), min(a, b)
                sentences.append(
                    f"{capitalize(NUMBER_WORDS[big])} minus {NUMBER_WORDS[small]} is {NUMBER_WORDS[big - small]}."
                )
        return " ".join(sentences)

    def _letter(self) -> str:
        rng = self.rng
        first, second = rng.sample(LETTER_BODIES, k=2)
        body = f"{first} {capitalize(second)}"
        return f"{rng.choice(LETTER_OPENINGS)} {body} {rng.choice(LETTER_CLOSINGS)}"


def write_calibration(seed: int, count: int) -> list[str]:
    writer = CalibrationWriter(seed)
    lines: list[str] = []
    seen: set[str] = set()
    while len(lines) < count:
        line = writer.line()
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style, no prefix space). No post-processor: <s> comes from the chat template."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=512,
        chat_template=CHAT_TEMPLATE,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out: Path) -> None:
    tokenizer.save_pretrained(out)
    # transformers 5 writes the template to chat_template.jinja and names the class "TokenizersBackend".
    # Keep one copy of the template, in tokenizer_config.json, and the class name older transformers know:
    # transformers 4 and 5 and onnxruntime-genai all read this layout.
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["chat_template"] = CHAT_TEMPLATE
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "chat_template.jinja").unlink(missing_ok=True)


def encode_stories(tokenizer: PreTrainedTokenizerFast, stories: Sequence[str]) -> torch.Tensor:
    """One long stream: <s> story </s> <s> story </s> ..."""
    encoded = tokenizer(list(stories), add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.append(tokenizer.bos_token_id)
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    return torch.tensor(stream, dtype=torch.long)


# --------------------------------------------------------------------------------------------------
# Model and training
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainSettings:
    steps: int
    minutes: float | None = None  # when set, replaces ``steps`` with as many steps as fit in the budget
    seq_len: int = 128
    batch_size: int = 16
    peak_lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 40
    weight_decay: float = 0.05
    timing_steps: int = 10  # steps used to turn --minutes into a step count


def build_model(tokenizer: PreTrainedTokenizerFast, hidden: int, layers: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def random_batch(stream: torch.Tensor, settings: TrainSettings, generator: torch.Generator) -> torch.Tensor:
    """Packed windows of ``seq_len`` tokens cut at random offsets of the token stream."""
    starts = torch.randint(0, len(stream) - settings.seq_len, (settings.batch_size,), generator=generator)
    return torch.stack([stream[s : s + settings.seq_len] for s in starts.tolist()])


def learning_rate(step: int, total_steps: int, settings: TrainSettings) -> float:
    if step < settings.warmup_steps:
        return settings.peak_lr * (step + 1) / settings.warmup_steps
    progress = min(1.0, (step - settings.warmup_steps) / max(1, total_steps - settings.warmup_steps))
    return settings.min_lr + 0.5 * (settings.peak_lr - settings.min_lr) * (1 + math.cos(math.pi * progress))


def train(model: LlamaForCausalLM, stream: torch.Tensor, settings: TrainSettings, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]  # matrices and embeddings; not the norms
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.peak_lr,
        betas=(0.9, 0.95),
    )
    model.train()

    by_time = settings.minutes is not None
    total_steps = 10**9 if by_time else settings.steps  # by time: fixed once the timing steps are measured
    started = time.perf_counter()
    smoothed = float("nan")
    step = 0
    while step < total_steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, total_steps, settings)
        batch = random_batch(stream, settings, generator)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1

        value = loss.item()
        smoothed = value if math.isnan(smoothed) else 0.9 * smoothed + 0.1 * value
        if by_time and step == settings.timing_steps:
            per_step = (time.perf_counter() - started) / step
            total_steps = max(step + 1, int(settings.minutes * 60 / per_step))
            print(
                f"{per_step:.2f} s/step -> {total_steps} steps for {settings.minutes:g} min "
                f"(pass --steps {total_steps} to reproduce exactly)"
            )
        if step % 25 == 0 or step == total_steps:
            elapsed = time.perf_counter() - started
            print(f"step {step:5d}/{total_steps}  loss {value:.3f}  (avg {smoothed:.3f})  {elapsed:6.1f}s")
    return smoothed


@torch.no_grad()
def evaluate(model: LlamaForCausalLM, stream: torch.Tensor, seq_len: int) -> float:
    """Mean next-token loss over non-overlapping windows of ``stream``."""
    model.eval()
    windows = stream[: len(stream) // seq_len * seq_len].view(-1, seq_len)
    losses = [model(input_ids=chunk, labels=chunk).loss.item() for chunk in windows.split(32)]
    return sum(losses) / len(losses)


@torch.no_grad()
def sample(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, prompt: str, new_tokens: int = 40) -> str:
    model.eval()
    messages = [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    input_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    output = model.generate(input_ids, max_new_tokens=new_tokens, do_sample=False)
    return tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=800, help="training steps (default: 800, reproducible)")
    budget.add_argument("--minutes", type=float, default=None, help="train for this wall-clock budget instead")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"checkpoint folder (default: {DEFAULT_OUT})")
    parser.add_argument("--text-dir", type=Path, default=TEXT_DIR, help="where held-out and calibration text go")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size (default: 128)")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers (default: 4)")
    parser.add_argument("--vocab", type=int, default=1024, help="target BPE vocabulary size (default: 1024)")
    parser.add_argument("--stories", type=int, default=40000, help="training stories to generate (default: 40000)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)

    train_stories = write_stories(SEED, args.stories)
    heldout = unique_stories(HELDOUT_SEED, 200, exclude=set(train_stories))
    calibration = write_calibration(CALIBRATION_SEED, 300)
    print(
        f"{len(train_stories)} training stories ({len(set(train_stories))} distinct), "
        f"{len(heldout)} held-out stories, {len(calibration)} calibration lines"
    )

    args.text_dir.mkdir(parents=True, exist_ok=True)
    (args.text_dir / "demo_heldout.txt").write_text("\n".join(heldout) + "\n", encoding="utf-8")
    (args.text_dir / "calibration.txt").write_text("\n".join(calibration) + "\n", encoding="utf-8")

    # The tokenizer also sees the calibration prose so that general English is not split into bytes.
    tokenizer = train_tokenizer([*train_stories, *calibration], args.vocab)
    stream = encode_stories(tokenizer, train_stories)
    heldout_stream = encode_stories(tokenizer, heldout)
    print(f"vocab {len(tokenizer)}, {len(stream)} training tokens, {len(heldout_stream)} held-out tokens")

    model = build_model(tokenizer, args.hidden, args.layers)
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    settings = TrainSettings(steps=args.steps, minutes=args.minutes)
    final_loss = train(model, stream, settings, SEED)
    heldout_loss = evaluate(model, heldout_stream, settings.seq_len)
    print(f"final train loss {final_loss:.3f}, held-out loss {heldout_loss:.3f} (ppl {math.exp(heldout_loss):.2f})")

    args.out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=64,
    )
    model.save_pretrained(args.out, safe_serialization=True)
    save_tokenizer(tokenizer, args.out)
    print(f"saved to {args.out} ({directory_size(args.out) / 2**20:.1f} MiB)")

    for prompt in ("Tom goes to the", "One day, Mia goes to the"):
        print(f"{prompt!r} -> {sample(model, tokenizer, prompt)!r}")


if __name__ == "__main__":
    main()
