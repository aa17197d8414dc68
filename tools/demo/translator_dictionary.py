"""Demo tool: word-by-word translation from a small built-in word list."""

WORDS = {
    "hello": {"fr": "bonjour", "es": "hola", "de": "hallo"},
    "world": {"fr": "monde", "es": "mundo", "de": "welt"},
    "thank": {"fr": "merci", "es": "gracias", "de": "danke"},
    "you": {"fr": "vous", "es": "usted", "de": "sie"},
    "good": {"fr": "bon", "es": "bueno", "de": "gut"},
    "morning": {"fr": "matin", "es": "mañana", "de": "morgen"},
    "cat": {"fr": "chat", "es": "gato", "de": "katze"},
    "dog": {"fr": "chien", "es": "perro", "de": "hund"},
    "yes": {"fr": "oui", "es": "sí", "de": "ja"},
    "no": {"fr": "non", "es": "no", "de": "nein"},
}


def translate(data):
    target = data["target"]
    out, unknown = [], []
    for word in data["text"].split():
        key = word.strip(".,!?").lower()
        if key in WORDS:
            out.append(WORDS[key][target])
        else:
            out.append(word)
            unknown.append(word)
    return {"translation": " ".join(out), "target": target, "unknown": unknown}
