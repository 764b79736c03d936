"""The French and Spanish catalogues: complete, formatted like their English
source, up to date with the code, and actually used by the pages.

A string added to the code without being extracted and translated fails
``test_every_string_in_the_code_is_in_the_catalogues`` with its msgid: run
``make extract-messages``, translate, and the suite passes again."""

from __future__ import annotations

import re
import shlex

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, check_and_call_extract_file, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.pofile import read_po

from tests.conftest import TRANSLATIONS, compile_stale_catalogues

ROOT = TRANSLATIONS.parent
LANGUAGES = ("fr", "es")
PLURAL_FORMS = {"fr": "nplurals=2; plural=(n > 1);", "es": "nplurals=2; plural=(n != 1);"}
NBSP = "\u00a0"

# A %-format directive as Python reads it: %(name)s, %(num)d, %s, %%...
PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[#0 +\-]*(?:\*|\d+)?(?:\.\d+)?[diouxXeEfFgGcrsa%]")
# Markup a translation must carry over unchanged: tags and entities. Template
# strings are inserted as Markup (not escaped), so a translation must also not
# bring in a raw character that HTML reads specially.
MARKUP = re.compile(r"<[^>]*>|&#?\w+;")
HTML_SPECIAL = set('<>&"')


def catalogue(lang: str) -> Catalog:
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return strict_read(po, locale=lang)


def strict_read(po, locale: str | None = None) -> Catalog:
    """The catalogue, or a failure naming the line where it is malformed: a
    merge that drops a ``msgstr`` line (the .po files merge as a union) would
    otherwise be read leniently, as msgfmt refuses it."""
    return read_po(po, locale=locale, abort_invalid=True)


def entries(catalog: Catalog) -> list[Message]:
    return [message for message in catalog if message.id]


def forms(value: str | tuple | list) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def label(message: Message) -> str:
    return forms(message.id)[0]


@pytest.fixture(scope="module", params=LANGUAGES)
def translated(request) -> tuple[str, Catalog]:
    return request.param, catalogue(request.param)


# ------------------------------------------------------------- completeness

def test_header_declares_the_languages_plural_rule(translated):
    lang, catalog = translated
    assert str(catalog.locale) == lang
    assert catalog.plural_forms == PLURAL_FORMS[lang]
    assert not catalog.fuzzy


def test_every_message_is_translated_and_none_is_fuzzy(translated):
    lang, catalog = translated
    untranslated = [label(m) for m in entries(catalog) if not all(s.strip() for s in forms(m.string))]
    fuzzy = [label(m) for m in entries(catalog) if m.fuzzy]
    assert entries(catalog)
    assert not untranslated, f"{lang}: untranslated {untranslated}"
    assert not fuzzy, f"{lang}: fuzzy {fuzzy}"


def test_plural_messages_have_every_form(translated):
    lang, catalog = translated
    for message in entries(catalog):
        if message.pluralizable:
            assert len(message.string) == catalog.num_plurals, label(message)


# ------------------------------------------------------------ same format

def test_placeholders_match_the_source(translated):
    """Every msgstr keeps exactly the msgid's %(name)s / %(num)d, none added,
    none renamed, and leaves no stray % that would break the formatting."""
    lang, catalog = translated
    wrong = []
    for message in entries(catalog):
        expected = {p for source in forms(message.id) for p in PLACEHOLDER.findall(source)}
        for string in forms(message.string):
            found = set(PLACEHOLDER.findall(string))
            stray = "%" in PLACEHOLDER.sub("", string)
            if found != expected or stray:
                wrong.append((label(message), string))
    assert not wrong, f"{lang}: placeholders differ from the source: {wrong}"


def test_python_format_flag_matches_the_source(translated):
    lang, catalog = translated
    for message in entries(catalog):
        if any(PLACEHOLDER.search(source) for source in forms(message.id)):
            assert message.python_format, f"{lang}: {label(message)!r} lost its python-format flag"


def test_markup_is_carried_over_unchanged(translated):
    lang, catalog = translated
    for message in entries(catalog):
        source = label(message)
        for string in forms(message.string):
            assert sorted(MARKUP.findall(string)) == sorted(MARKUP.findall(source)), (lang, source, string)
            added = (set(string) & HTML_SPECIAL) - set("".join(forms(message.id)))
            assert not added, f"{lang}: {string!r} brings in {added}, which HTML reads specially"


def test_french_punctuation_takes_a_no_break_space():
    """Before : ; ? ! and inside « », always U+00A0, never a plain space."""
    bad = []
    for message in entries(catalogue("fr")):
        for string in forms(message.string):
            if re.search(r"[ \u202f][:;?!»]|«[ \u202f]", PLACEHOLDER.sub("x", string)):
                bad.append(string)
    assert not bad, bad


# -------------------------------------------------- up to date with the code

def extraction_settings() -> tuple[list[str], dict]:
    """The paths and keywords of `make extract-messages`, read from the
    Makefile so that this test and the catalogues cannot disagree."""
    makefile = (ROOT / "Makefile").read_text()
    sources = re.search(r"^SOURCES\s*:?=\s*(.+)$", makefile, re.M).group(1).split()
    command = shlex.split(next(line for line in makefile.splitlines() if "pybabel extract" in line))
    extra = [command[i + 1] for i, arg in enumerate(command) if arg == "-k"]
    return sources, {**DEFAULT_KEYWORDS, **parse_keywords(extra)}


def messages_in_the_code() -> Catalog:
    """What `pybabel extract` finds in the sources, in a catalogue of its own."""
    sources, keywords = extraction_settings()
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = Catalog()
    for source in sources:
        path = ROOT / source
        if path.is_file():
            extracted = check_and_call_extract_file(str(path), method_map, options_map, callback=None,
                                                    keywords=keywords, comment_tags=(), dirpath=str(ROOT),
                                                    strip_comment_tags=False)
        else:
            extracted = extract_from_dir(str(path), method_map, options_map, keywords=keywords)
        for filename, lineno, message, _comments, context in extracted:
            found.add(message, None, [(filename, lineno)], context=context)
    return found


def key(message: Message) -> tuple:
    return message.context, message.id


def test_every_string_in_the_code_is_in_the_catalogues():
    code = {key(m): m for m in entries(messages_in_the_code())}
    assert len(code) > 100, "extraction found almost nothing: is babel.cfg read?"
    for name, path in [("messages.pot", TRANSLATIONS / "messages.pot")] + [
        (lang, TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po") for lang in LANGUAGES
    ]:
        with path.open("rb") as file:
            known = {key(m) for m in entries(strict_read(file))}
        missing = [f"{label(m)!r} ({m.locations[0][0]}:{m.locations[0][1]})"
                   for k, m in code.items() if k not in known]
        assert not missing, (f"{name} lacks {len(missing)} string(s) of the code; run `make extract-messages` "
                             "and translate them:\n" + "\n".join(missing))


# ------------------------------------------------------------- in the pages

def test_conftest_compiled_the_catalogues():
    assert compile_stale_catalogues() == []
    for lang in LANGUAGES:
        po = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
        mo = po.with_suffix(".mo")
        assert mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime


@pytest.fixture
def demo(app):
    from billing.catalogue.offers import load_preset
    from common.extensions import db

    with app.app_context():
        load_preset(db.session, "demo")


PAGES = {
    ("fr", "/"): ["L'assistance prépayée, à prix connu d'avance", "Simulateur", "Se connecter", "S'inscrire",
                  "Essai gratuit", "Abonnement", "Voir le détail", "HT", "TTC (TVA 20", "Économisez",
                  "Aller au contenu"],
    ("es", "/"): ["Soporte prepago, con el precio claro desde el principio", "Simulador", "Iniciar sesión",
                  "Registrarse", "Prueba gratuita", "Suscripción", "Ver detalles", "sin IVA", "con IVA (20", "Ahorre",
                  "Ir al contenido"],
    ("fr", "/login"): ["<h1>Se connecter</h1>", f"Mot de passe oublié{NBSP}?", f"Pas encore de compte{NBSP}?",
                       "Mot de passe", "Rester connecté sur cet appareil", "Votre solde, vos tickets et vos factures."],
    ("es", "/login"): ["<h1>Iniciar sesión</h1>", "¿Ha olvidado su contraseña?", "¿Aún no tiene cuenta?",
                       "Contraseña", "Mantener la sesión iniciada en este dispositivo",
                       "Su saldo, sus tickets y sus facturas."],
}


@pytest.mark.parametrize(("lang", "path"), list(PAGES))
def test_pages_speak_the_visitors_language(client, demo, lang, path):
    response = client.get(path, headers={"Accept-Language": lang})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'<html lang="{lang}"' in html
    missing = [phrase for phrase in PAGES[lang, path] if phrase not in html]
    assert not missing, f"{lang} {path}: {missing}"
    # The English it replaces is gone.
    for english in ("Log in", "Sign up", "Skip to content"):
        assert f">{english}<" not in html
