"""The words of the tech-products world and their hand-set affinities.

The generator (:mod:`tfrs_recsys.data.generator`) draws users and items from
these: the five personalities and six professions of the users, the eight
product types with their price ranges, qualities, purposes and feature
phrases, the audiences named in descriptions, and the affinities that make a
personality or profession like a product type or an audience.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PERSONALITIES: tuple[tuple[str, str], ...] = (
    ("tec", "Tech Enthusiast"),
    ("bud", "Budget Conscious"),
    ("cre", "Creative Explorer"),
    ("pra", "Practical Buyer"),
    ("per", "Performance Seeker"),
)
PROFESSIONS: tuple[str, ...] = ("education", "science", "engineering", "arts", "business", "law")


@dataclasses.dataclass(frozen=True)
class ProductType:
    """A product type: its price range, catalog share and the words of its texts."""

    name: str
    price_range: tuple[float, float]
    share: float
    qualities: tuple[str, ...]
    purposes: tuple[str, ...]
    features: tuple[str, ...]


PRODUCT_TYPES: tuple[ProductType, ...] = (
    ProductType(
        "laptop",
        (270.0, 1620.0),
        0.18,
        (
            "advanced cooling system",
            "high refresh rate display",
            "AI-powered processor",
            "long battery life",
            "backlit keyboard",
            "lightweight aluminium body",
        ),
        ("built for performance", "perfect for multitasking", "great for travel"),
        (
            "Touchscreen",
            "Expandable storage",
            "Fast charging",
            "Bluetooth 5.0",
            "USB-C connectivity",
            "Fingerprint reader",
        ),
    ),
    ProductType(
        "headphones",
        (40.0, 90.0),
        0.16,
        (
            "noise cancellation",
            "wireless connectivity",
            "deep bass",
            "long battery life",
            "foldable design",
        ),
        ("great for travel", "ideal for immersive sound", "perfect for long sessions"),
        (
            "Fast charging",
            "Bluetooth 5.0",
            "Over-ear design",
            "Noise cancellation",
            "Built-in microphone",
        ),
    ),
    ProductType(
        "monitor",
        (80.0, 290.0),
        0.14,
        (
            "4K UHD display",
            "HDR10 support",
            "anti-glare coating",
            "ultra-thin bezel",
            "high refresh rate panel",
            "colour-accurate IPS panel",
        ),
        ("built for high clarity", "perfect for multitasking", "ideal for long work sessions"),
        (
            "4K display",
            "Adjustable stand",
            "Low blue light",
            "HDMI connectivity",
            "USB-C connectivity",
        ),
    ),
    ProductType(
        "mouse",
        (30.0, 70.0),
        0.14,
        (
            "adjustable DPI",
            "precision tracking",
            "ergonomic design",
            "silent click buttons",
            "programmable buttons",
        ),
        ("ideal for everyday use", "great for portability", "built for performance"),
        ("Wireless", "Silent clicks", "Rechargeable", "Compact design", "RGB lighting"),
    ),
    ProductType(
        "keyboard",
        (25.0, 160.0),
        0.10,
        (
            "mechanical switches",
            "backlit keys",
            "low-profile keys",
            "ergonomic layout",
            "quiet typing",
        ),
        ("ideal for everyday use", "built for performance", "perfect for long sessions"),
        ("Wireless", "RGB lighting", "Detachable cable", "Numeric keypad", "Multi-device pairing"),
    ),
    ProductType(
        "tablet",
        (150.0, 950.0),
        0.10,
        (
            "stylus support",
            "vivid OLED display",
            "long battery life",
            "lightweight design",
            "fast processor",
        ),
        ("great for portability", "perfect for multitasking", "built for high clarity"),
        ("Touchscreen", "Expandable storage", "Fast charging", "Face unlock", "5G connectivity"),
    ),
    ProductType(
        "smartwatch",
        (90.0, 450.0),
        0.09,
        (
            "heart rate monitoring",
            "GPS tracking",
            "long battery life",
            "sleep tracking",
            "water resistance",
        ),
        ("ideal for everyday use", "great for travel", "built for performance"),
        ("Fast charging", "Bluetooth 5.0", "Always-on display", "NFC payments", "Water resistant"),
    ),
    ProductType(
        "speaker",
        (30.0, 260.0),
        0.09,
        (
            "deep bass",
            "360-degree sound",
            "waterproof design",
            "voice assistant",
            "long battery life",
        ),
        ("ideal for immersive sound", "great for travel", "ideal for everyday use"),
        ("Bluetooth 5.0", "Waterproof", "Voice control", "Stereo pairing", "Rechargeable"),
    ),
)

AUDIENCES: tuple[str, ...] = (
    "gamers",
    "content creators",
    "business professionals",
    "remote workers",
    "students",
    "music lovers",
    "commuters",
    "graphic designers",
    "developers",
    "researchers",
    "teachers",
    "fitness enthusiasts",
)

# Hand-set affinities of audiences with personalities and professions, so that
# the text signal is interpretable ("Designed for gamers" suits Performance
# Seekers and engineers). Keys are personality prefixes or professions.
AUDIENCE_AFFINITY: dict[str, dict[str, float]] = {
    "gamers": {"tec": 0.8, "per": 1.0, "engineering": 0.4},
    "content creators": {"cre": 1.0, "arts": 0.9},
    "business professionals": {"business": 1.0, "law": 0.8, "pra": 0.3},
    "remote workers": {"pra": 0.6, "business": 0.4, "education": 0.3},
    "students": {"bud": 0.8, "education": 0.8, "science": 0.3},
    "music lovers": {"cre": 0.5, "arts": 0.6, "bud": 0.2},
    "commuters": {"pra": 0.5, "bud": 0.4, "law": 0.2},
    "graphic designers": {"cre": 0.8, "arts": 0.8},
    "developers": {"tec": 0.7, "engineering": 1.0, "science": 0.5},
    "researchers": {"science": 1.0, "education": 0.4},
    "teachers": {"education": 1.0},
    "fitness enthusiasts": {"per": 0.6, "pra": 0.2},
}

# Rows: personalities in PERSONALITIES order; columns: PRODUCT_TYPES order.
TYPE_AFFINITY = np.array(
    [
        # laptop headph monitor mouse keyb tablet watch speaker
        [2.0, 0.3, 0.8, 0.0, 0.8, 1.0, 0.8, 0.2],  # Tech Enthusiast
        [-1.0, 1.6, -0.5, 1.4, 0.6, -0.6, -0.3, 0.8],  # Budget Conscious
        [0.0, 0.5, 2.0, 0.2, 0.0, 1.2, -0.3, 0.4],  # Creative Explorer
        [-0.3, 0.2, 0.3, 2.0, 1.2, 0.0, 0.4, 0.0],  # Practical Buyer
        [2.0, 0.2, 0.6, 0.5, 0.3, -0.2, 1.2, 0.3],  # Performance Seeker
    ]
)
# Price sensitivity by personality (higher: prefers cheaper items).
PRICE_SENSITIVITY = np.array([-0.1, 1.2, 0.2, 0.6, -0.3])
# Mean age and preferred professions by personality.
AGE_MEAN = np.array([29.0, 27.0, 34.0, 42.0, 31.0])
PROFESSION_BOOST: dict[str, dict[str, float]] = {
    "tec": {"engineering": 2.5, "science": 1.5},
    "bud": {"education": 2.0, "arts": 1.2},
    "cre": {"arts": 3.0},
    "pra": {"business": 1.8, "law": 1.8},
    "per": {"engineering": 1.8, "business": 1.5},
}

DESCRIPTION_TEMPLATES: tuple[str, ...] = (
    "Designed for {audience}, this {type} includes {q1} and {q2}. It’s {purpose} and built for high efficiency.",
    "With {q1} and {q2}, this {type} is {purpose}. Perfect for {audience}, it delivers top-tier functionality.",
    "This {type} features {q1} and {q2}, designed for {audience}. It is {purpose}, offering reliable performance and user comfort.",
    "{Type} comes equipped with {q1} and {q2}, making it {purpose}. Great choice for {audience}.",
)


def describe_item(
    kind: ProductType,
    template: int,
    audience: str,
    qualities: tuple[str, str],
    purpose: str,
    n_features: int,
    rng: np.random.Generator,
) -> tuple[str, np.ndarray]:
    """An item's description (``DESCRIPTION_TEMPLATES[template]`` filled in) and its
    feature phrases: ``n_features`` of the kind's (at most all), drawn from ``rng``."""
    q1, q2 = qualities
    description = DESCRIPTION_TEMPLATES[template].format(
        audience=audience,
        type=kind.name,
        Type=kind.name.capitalize(),
        q1=q1,
        q2=q2,
        purpose=purpose,
    )
    chosen = rng.choice(kind.features, size=min(n_features, len(kind.features)), replace=False)
    return description, chosen
