"""Plausible French extract rows at national scale, for demos and benchmarks.

``generate_rows(count, seed=...)`` yields ``ExtractRow``s deterministically from the
seed: the same arguments always give the same rows, in the same order.

What is real and what is assumed:

- Profession codes and labels are RPPS codes (NOS TRE_G15-ProfessionSante):
  10 Médecin, 21 Pharmacien, 40 Chirurgien-Dentiste, 50 Sage-Femme, 60 Infirmier,
  70 Masseur-Kinésithérapeute, 80 Pédicure-Podologue, 91 Orthophoniste,
  92 Orthoptiste; category ``C`` "Civil".
- Savoir-faire codes are ordinal specialties (NOS TRE_R38-SpecialiteOrdinale, SMxx),
  with their labels; only médecins have one here.
- Cities, postal codes and departments are real; street names are common ones.
- Assumed, not measured: the national mix of mailbox types, PER ~80 %, ORG ~15 %,
  APP ~4 %, CAB ~1 %; the mix of professions among PER mailboxes; the share of
  médecins who are general practitioners; ``Civilité d'exercice`` ``DR`` for
  médecins, chirurgiens-dentistes and some pharmaciens (``PR`` for a few médecins),
  empty otherwise; ``Dématérialisation`` True for about a third of the mailboxes;
  street type codes (R, AV, BD, ...); ordinal mail domains per profession
  (``medecin.mssante.fr``...) for professionals in private practice.
- Identifiers are shaped like real ones and unique within a run, not real:
  RPPS 11 digits (Luhn key), idNatPs ``8`` + RPPS; idNatSt ``1`` + FINESS (9 digits)
  or ``3`` + SIRET (14 digits, Luhn key).
- Addresses are ``prenom.nom@<domain>.mssante.fr`` with accents stripped, and a
  counter suffix (``jean.martin2``) on collision; every address is unique.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from mssante.directory.extract import ExtractRow
from mssante.domain.mailboxes import MailboxType

T = TypeVar("T")

# Assumption (see the module docstring): cumulative shares of the mailbox types.
TYPE_MIX: tuple[tuple[MailboxType, float], ...] = (
    (MailboxType.PER, 0.80),
    (MailboxType.ORG, 0.15),
    (MailboxType.APP, 0.04),
    (MailboxType.CAB, 0.01),
)

FAMILY_NAMES: tuple[str, ...] = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois",
    "Moreau", "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David",
    "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine",
    "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "André", "Mercier", "Blanc",
    "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia",
    "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu",
    "Gautier", "Masson", "Marchand", "Duval", "Denis", "Dumont", "Marie", "Lemaire",
    "Noël", "Meyer", "Dufour", "Meunier", "Brun", "Blanchard", "Giraud", "Joly",
    "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Martinez", "Gérard",
    "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron",
    "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix",
    "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet",
    "Rolland", "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy", "Guillot",
    "Hubert", "Berger", "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis", "Deschamps",
    "Huet", "Vasseur", "Perez", "Boucher", "Fleury", "Royer", "Klein", "Jacquet",
    "Adam", "Paris", "Poirier", "Marty", "Aubry", "Guyot", "Carré", "Charles",
    "Renault", "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé",
    "Schneider", "Fernandez", "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost",
    "Millet", "Perrot", "Daniel", "Le Roux", "Cousin", "Germain", "Breton", "Besson",
    "Langlois", "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier", "Leblanc", "Barré",
    "Lebrun", "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier",
    "Michaud", "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain", "Tessier",
    "Chauvin", "Da Silva", "Bouchet", "Lemaître", "Bénard", "D'Almeida", "Hoarau", "Texier",
)

GIVEN_NAMES: tuple[str, ...] = (
    "Jean", "Marie", "Pierre", "Nathalie", "Michel", "Isabelle", "Philippe", "Sylvie",
    "Alain", "Catherine", "Nicolas", "Sandrine", "Christophe", "Christine", "Patrick",
    "Véronique", "Stéphane", "Valérie", "François", "Hélène", "Laurent", "Céline",
    "Frédéric", "Stéphanie", "Éric", "Sophie", "Olivier", "Anne", "Julien", "Aurélie",
    "Sébastien", "Émilie", "David", "Julie", "Thomas", "Camille", "Guillaume", "Caroline",
    "Vincent", "Laure", "Jérôme", "Claire", "Antoine", "Élodie", "Maxime", "Audrey",
    "Alexandre", "Virginie", "Mathieu", "Florence", "Romain", "Agnès", "Benoît", "Mélanie",
    "Damien", "Amélie", "Cédric", "Delphine", "Fabrice", "Ophélie", "Arnaud", "Pauline",
    "Thierry", "Chloé", "Bruno", "Léa", "Hugo", "Manon", "Lucas", "Inès",
    "Louis", "Clémence", "Paul", "Margaux", "Jacques", "Béatrice", "Gérard", "Martine",
    "Yves", "Françoise", "Bernard", "Brigitte", "Daniel", "Monique", "Denis", "Geneviève",
    "Joël", "Josiane", "Hervé", "Mireille", "Raphaël", "Noémie", "Gaëlle", "Loïc",
    "Anaïs", "Mickaël", "Maëlle", "Jérémy", "Océane", "Grégoire", "Zoé", "Adrien",
    "Lucie", "Baptiste", "Charlotte", "Clément", "Juliette", "Quentin", "Sarah", "Kévin",
    "Marion", "Yannick", "Nadia", "Karim", "Sonia", "Mehdi", "Leïla", "Rémi", "Solène",
    "Gilles", "Danièle", "Serge", "Odile", "Marc", "Agathe", "Luc", "Bérénice",
)


@dataclass(frozen=True, slots=True)
class City:
    name: str
    postal_codes: tuple[str, ...]
    department: str


def _arrondissements(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{n:03d}" for n in range(1, count + 1))


CITIES: tuple[City, ...] = (
    City("Paris", _arrondissements("75", 20), "75"),
    City("Marseille", _arrondissements("13", 16), "13"),
    City("Lyon", _arrondissements("69", 9), "69"),
    City("Toulouse", ("31000", "31100", "31200", "31300", "31400", "31500"), "31"),
    City("Nice", ("06000", "06100", "06200", "06300"), "06"),
    City("Nantes", ("44000", "44100", "44200", "44300"), "44"),
    City("Montpellier", ("34000", "34070", "34080", "34090"), "34"),
    City("Strasbourg", ("67000", "67100", "67200"), "67"),
    City("Bordeaux", ("33000", "33100", "33200", "33300", "33800"), "33"),
    City("Lille", ("59000", "59160", "59260", "59800"), "59"),
    City("Rennes", ("35000", "35200", "35700"), "35"),
    City("Reims", ("51100",), "51"),
    City("Toulon", ("83000", "83100", "83200"), "83"),
    City("Saint-Étienne", ("42000", "42100"), "42"),
    City("Le Havre", ("76600", "76610", "76620"), "76"),
    City("Grenoble", ("38000", "38100"), "38"),
    City("Dijon", ("21000",), "21"),
    City("Angers", ("49000", "49100"), "49"),
    City("Nîmes", ("30000", "30900"), "30"),
    City("Villeurbanne", ("69100",), "69"),
    City("Clermont-Ferrand", ("63000", "63100"), "63"),
    City("Le Mans", ("72000", "72100"), "72"),
    City("Aix-en-Provence", ("13090", "13100"), "13"),
    City("Brest", ("29200",), "29"),
    City("Tours", ("37000", "37100", "37200"), "37"),
    City("Amiens", ("80000", "80080", "80090"), "80"),
    City("Limoges", ("87000", "87100", "87280"), "87"),
    City("Annecy", ("74000",), "74"),
    City("Perpignan", ("66000", "66100"), "66"),
    City("Boulogne-Billancourt", ("92100",), "92"),
    City("Metz", ("57000", "57050", "57070"), "57"),
    City("Besançon", ("25000",), "25"),
    City("Orléans", ("45000", "45100"), "45"),
    City("Rouen", ("76000", "76100"), "76"),
    City("Mulhouse", ("68100", "68200"), "68"),
    City("Caen", ("14000",), "14"),
    City("Nancy", ("54000", "54100"), "54"),
    City("Argenteuil", ("95100",), "95"),
    City("Montreuil", ("93100",), "93"),
    City("Roubaix", ("59100",), "59"),
    City("Tourcoing", ("59200",), "59"),
    City("Avignon", ("84000",), "84"),
    City("Poitiers", ("86000",), "86"),
    City("Versailles", ("78000",), "78"),
    City("Créteil", ("94000",), "94"),
    City("Pau", ("64000",), "64"),
    City("La Rochelle", ("17000",), "17"),
    City("Calais", ("62100",), "62"),
    City("Cannes", ("06400", "06150"), "06"),
    City("Ajaccio", ("20000", "20090"), "2A"),
    City("Bastia", ("20200", "20600"), "2B"),
    City("Colmar", ("68000",), "68"),
    City("Valence", ("26000",), "26"),
    City("Quimper", ("29000",), "29"),
    City("Troyes", ("10000",), "10"),
    City("Chambéry", ("73000",), "73"),
    City("Lorient", ("56100",), "56"),
    City("Niort", ("79000",), "79"),
    City("Vannes", ("56000",), "56"),
    City("Bayonne", ("64100",), "64"),
    City("Béziers", ("34500",), "34"),
    City("Saint-Denis", ("97400", "97490"), "974"),
    City("Fort-de-France", ("97200",), "972"),
    City("Pointe-à-Pitre", ("97110",), "971"),
    City("Cayenne", ("97300",), "973"),
    City("Angoulême", ("16000",), "16"),
    City("Saint-Brieuc", ("22000",), "22"),
    City("Évreux", ("27000",), "27"),
    City("Chartres", ("28000",), "28"),
    City("Blois", ("41000",), "41"),
)


@dataclass(frozen=True, slots=True)
class Profession:
    code: str  # RPPS profession code (TRE_G15)
    label: str
    domain: str  # assumed ordinal mail domain, without ``.mssante.fr``
    weight: float  # assumed share of PER mailboxes
    doctor_share: float  # share with Civilité d'exercice DR


PROFESSIONS: tuple[Profession, ...] = (
    Profession("10", "Médecin", "medecin", 46.0, 1.0),
    Profession("21", "Pharmacien", "pharmacien", 12.0, 0.3),
    Profession("40", "Chirurgien-Dentiste", "chirurgien-dentiste", 7.0, 1.0),
    Profession("50", "Sage-Femme", "sage-femme", 4.0, 0.0),
    Profession("60", "Infirmier", "infirmier", 18.0, 0.0),
    Profession("70", "Masseur-Kinésithérapeute", "masseur-kinesitherapeute", 9.0, 0.0),
    Profession("80", "Pédicure-Podologue", "pedicure-podologue", 1.5, 0.0),
    Profession("91", "Orthophoniste", "orthophoniste", 1.5, 0.0),
    Profession("92", "Orthoptiste", "orthoptiste", 1.0, 0.0),
)

# NOS TRE_R38-SpecialiteOrdinale; the weights are assumed.
DOCTOR_SKILLS: tuple[tuple[str, str, float], ...] = (
    ("SM26", "Qualifié en Médecine générale", 45.0),
    ("SM54", "Médecine générale", 5.0),
    ("SM04", "Cardiologie et Maladies vasculaires", 4.0),
    ("SM02", "Anesthésie-réanimation", 4.0),
    ("SM42", "Psychiatrie", 4.0),
    ("SM44", "Radio-diagnostic", 3.5),
    ("SM40", "Pédiatrie", 3.0),
    ("SM38", "Ophtalmologie", 2.5),
    ("SM20", "Gynécologie-obstétrique", 2.5),
    ("SM15", "Dermatologie et Vénéréologie", 1.5),
    ("SM24", "Gastro-entérologie et Hépatologie", 1.5),
    ("SM41", "Pneumologie", 1.5),
    ("SM32", "Neurologie", 1.5),
    ("SM48", "Rhumatologie", 1.5),
    ("SM34", "ORL et Chirurgie cervico-faciale", 1.5),
    ("SM08", "Chirurgie orthopédique et Traumatologie", 1.5),
    ("SM14", "Chirurgie viscérale et digestive", 1.0),
    ("SM27", "Médecine interne", 1.0),
    ("SM30", "Néphrologie", 1.0),
    ("SM16", "Endocrinologie et Métabolisme", 1.0),
    ("SM03", "Biologie médicale", 1.5),
    ("SM59", "Médecine d'urgence", 2.0),
    ("SM18", "Gériatrie", 1.0),
    ("SM36", "Oncologie, option médicale", 1.0),
    ("SM12", "Chirurgie urologique", 0.8),
    ("SM25", "Médecine du travail", 1.2),
)

STREET_TYPES: tuple[str, ...] = ("R", "R", "R", "AV", "AV", "BD", "PL", "CHE", "ALL", "RTE",
                                 "IMP", "QUAI")
STREET_NAMES: tuple[str, ...] = (
    "de la République", "Victor Hugo", "Jean Jaurès", "Pasteur", "du Général de Gaulle",
    "de la Gare", "Gambetta", "Foch", "de Paris", "Nationale", "Émile Zola",
    "de la Liberté", "Carnot", "Voltaire", "des Écoles", "du Moulin", "Saint-Exupéry",
    "Jules Ferry", "Georges Clemenceau", "de Verdun", "des Tilleuls", "du Château",
    "de l'Église", "Anatole France", "Léon Blum", "du Maréchal Leclerc", "Alsace-Lorraine",
    "des Lilas", "de Strasbourg", "Marcel Pagnol", "Jean Moulin", "de la Paix",
    "du 8 Mai 1945", "Pierre et Marie Curie", "des Acacias", "Lamartine",
)
LOCATION_COMPLEMENTS: tuple[str, ...] = ("Bâtiment A", "Bâtiment B", "Résidence du Parc",
                                        "2e étage", "Pôle santé", "Hall 3")



@dataclass(frozen=True, slots=True)
class OrganisationKind:
    """A kind of organisation; ``finess`` False means SIRET; the weights are assumed."""

    prefix: str
    slug: str
    finess: bool
    weight: float
    services: tuple[str, ...]


HOSPITAL_SERVICES: tuple[str, ...] = (
    "Cardiologie", "Urgences", "Pédiatrie", "Gynécologie-obstétrique", "Radiologie",
    "Médecine interne", "Chirurgie orthopédique", "Oncologie", "Pharmacie", "Gériatrie",
    "Pneumologie", "Neurologie", "Bureau des entrées", "Secrétariat médical",
    "Département d'information médicale", "Néphrologie", "Réanimation", "Psychiatrie",
)
ORGANISATION_KINDS: tuple[OrganisationKind, ...] = (
    OrganisationKind("CENTRE HOSPITALIER", "ch", True, 30.0, HOSPITAL_SERVICES),
    OrganisationKind("CENTRE HOSPITALIER UNIVERSITAIRE", "chu", True, 6.0, HOSPITAL_SERVICES),
    OrganisationKind("CLINIQUE", "clinique", True, 20.0, HOSPITAL_SERVICES[:12]),
    OrganisationKind("EHPAD", "ehpad", True, 20.0, ("Secrétariat", "Infirmerie",
                                                    "Direction des soins")),
    OrganisationKind("LABORATOIRE DE BIOLOGIE MEDICALE", "labo", False, 12.0,
                     ("Biologie médicale", "Résultats", "Secrétariat")),
    OrganisationKind("CENTRE DE SANTE", "cds", False, 8.0, ("Accueil", "Secrétariat médical",
                                                            "Soins infirmiers")),
    OrganisationKind("CENTRE D'IMAGERIE MEDICALE", "imagerie", False, 4.0,
                     ("Radiologie", "Comptes rendus", "Secrétariat")),
)
CLINIC_NAMES: tuple[str, ...] = (
    "DU PARC", "SAINT-JOSEPH", "DES CEDRES", "PASTEUR", "SAINTE-MARIE", "DU VAL",
    "LES LILAS", "LES TILLEULS", "DU LAC", "BEAU SOLEIL", "LES GLYCINES", "SAINT-MARTIN",
    "DE L'ESPERANCE", "LES JARDINS", "DES ALPES", "DU PONT", "LES OLIVIERS", "BELLEVUE",
)
APP_SERVICES: tuple[tuple[str, str], ...] = (
    ("Résultats de biologie", "resultats"), ("Comptes rendus d'imagerie", "cr-imagerie"),
    ("Lettres de liaison", "lettres-liaison"), ("Dossier patient informatisé", "dpi"),
    ("Comptes rendus opératoires", "cr-operatoires"), ("Alertes sanitaires", "alertes"),
)


@lru_cache(maxsize=4096)
def ascii_slug(text: str) -> str:
    """``Hélène D'Almeida`` → ``helene-d-almeida``: accents stripped, lower case, LDH."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


def luhn_key(digits: str) -> str:
    """The Luhn check digit to append to ``digits`` (RPPS and SIRET keys)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def _cumulative(weights: list[float]) -> list[float]:
    total, running, result = sum(weights), 0.0, []
    for weight in weights:
        running += weight
        result.append(running / total)
    result[-1] = 1.0
    return result


@dataclass(frozen=True, slots=True)
class _Organisation:
    kind: OrganisationKind
    legal_name: str
    domain: str  # full mail domain
    id_type: str  # "1" FINESS, "3" SIRET
    national_id: str  # idNatSt
    city: City
    postal_code: str
    street_number: str
    street_number_complement: str
    street_type: str
    street_name: str
    location_complement: str


class _Generator:
    """The state of one run: a random source, counters and the addresses used."""

    def __init__(self, seed: int, count: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()
        self.serial = 0
        self.domains: dict[str, int] = {}
        self.profession_cdf = _cumulative([p.weight for p in PROFESSIONS])
        self.skill_cdf = _cumulative([s[2] for s in DOCTOR_SKILLS])
        self.kind_cdf = _cumulative([k.weight for k in ORGANISATION_KINDS])
        self.organisations = [self.organisation() for _ in range(max(20, count // 60))]

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def pick_weighted(self, items: tuple[T, ...], cdf: list[float]) -> T:
        draw = self.rng.random()
        for item, bound in zip(items, cdf, strict=True):
            if draw < bound:
                return item
        return items[-1]  # pragma: no cover - the last bound is 1.0

    def scrambled(self, multiplier: int, modulus: int) -> int:
        # multiplier and modulus are coprime, so this maps serials 1..modulus-1 one to
        # one: identifiers stay unique while looking random.
        return self.next_serial() * multiplier % modulus

    def rpps(self) -> str:
        body = f"10{self.scrambled(48271, 99_999_989):08d}"
        return body + luhn_key(body)

    def finess(self, department: str) -> str:
        prefix = department[:2] if department.isdigit() else "20"
        return f"{prefix}{self.scrambled(48271, 9_999_991):07d}"

    def siret(self) -> str:
        body = f"{self.scrambled(7_777_777_781, 9_999_999_967):013d}"
        return body + luhn_key(body)

    def unique_address(self, local: str, domain: str) -> str:
        address = f"{local}@{domain}"
        suffix = 1
        while address in self.used:
            suffix += 1
            address = f"{local}{suffix}@{domain}"
        self.used.add(address)
        return address

    def organisation(self) -> _Organisation:
        rng = self.rng
        kind = self.pick_weighted(ORGANISATION_KINDS, self.kind_cdf)
        city = rng.choice(CITIES)
        upper_city = ascii_slug(city.name).replace("-", " ").upper()
        base = f"{kind.slug}-{ascii_slug(city.name)}"
        number = self.domains.get(base, 0) + 1
        self.domains[base] = number
        if kind.slug in ("ch", "chu") and number == 1:  # one hospital named after its city
            legal_name = f"{kind.prefix} DE {upper_city}"
        else:
            legal_name = f"{kind.prefix} {rng.choice(CLINIC_NAMES)}"
        domain = f"{base}{number if number > 1 else ''}.mssante.fr"
        if kind.finess:
            id_type, national_id = "1", "1" + self.finess(city.department)
        else:
            id_type, national_id = "3", "3" + self.siret()
        return _Organisation(
            kind, legal_name, domain, id_type, national_id, city,
            rng.choice(city.postal_codes), str(rng.randint(1, 250)),
            "B" if rng.random() < 0.05 else "", rng.choice(STREET_TYPES),
            rng.choice(STREET_NAMES),
            rng.choice(LOCATION_COMPLEMENTS) if rng.random() < 0.15 else "")

    def row(self, mailbox_type: MailboxType, address: str, organisation: _Organisation, *,
            person: tuple[str, str, str, str, str, str, str, str] | None = None,
            service: str = "", legal_name: str | None = None) -> ExtractRow:
        rpps, civility, family, given, code, label, skill_code, skill_label = (
            person or ("", "", "", "", "", "", "", ""))
        o = organisation
        return ExtractRow(
            mailbox_type, address, "8" if rpps else "", rpps, "8" + rpps if rpps else "",
            o.id_type, o.national_id, service, civility, family, given,
            "C" if rpps else "", "Civil" if rpps else "", code, label, skill_code,
            skill_label, self.rng.random() < 0.33,
            o.legal_name if legal_name is None else legal_name, "", o.location_complement,
            "", o.street_number, o.street_number_complement, o.street_type, o.street_name,
            "", f"{o.postal_code} {ascii_slug(o.city.name).replace('-', ' ').upper()}",
            o.postal_code, o.city.department, "FRANCE")

    def person(self) -> tuple[tuple[str, str, str, str, str, str, str, str], Profession]:
        rng = self.rng
        profession = self.pick_weighted(PROFESSIONS, self.profession_cdf)
        skill_code = skill_label = ""
        if profession.code == "10":
            skill_code, skill_label, _ = self.pick_weighted(DOCTOR_SKILLS, self.skill_cdf)
        civility = "DR" if rng.random() < profession.doctor_share else ""
        if civility and profession.code == "10" and rng.random() < 0.03:
            civility = "PR"
        person = (self.rpps(), civility, rng.choice(FAMILY_NAMES), rng.choice(GIVEN_NAMES),
                  profession.code, profession.label, skill_code, skill_label)
        return person, profession

    def practice(self, family: str, profession: Profession) -> _Organisation:
        """A private practice (SIRET) of a professional, in a random city."""
        rng = self.rng
        city = rng.choice(CITIES)
        name = f"CABINET {ascii_slug(profession.label).replace('-', ' ').upper()} " + (
            ascii_slug(family).replace("-", " ").upper())
        return _Organisation(
            ORGANISATION_KINDS[0], name, f"{profession.domain}.mssante.fr", "3",
            "3" + self.siret(), city, rng.choice(city.postal_codes),
            str(rng.randint(1, 250)), "", rng.choice(STREET_TYPES),
            rng.choice(STREET_NAMES), "")

    def per(self) -> ExtractRow:
        person, profession = self.person()
        _, _, family, given, *_ = person
        local = f"{ascii_slug(given)}.{ascii_slug(family)}"
        if self.rng.random() < 0.45:  # works at an organisation
            organisation = self.rng.choice(self.organisations)
            address = self.unique_address(local, organisation.domain)
            return self.row(MailboxType.PER, address, organisation, person=person)
        practice = self.practice(family, profession)
        address = self.unique_address(local, practice.domain)
        return self.row(MailboxType.PER, address, practice, person=person)

    def cab(self) -> ExtractRow:
        person, profession = self.person()
        family = person[2]
        practice = self.practice(family, profession)
        address = self.unique_address(f"cabinet.{ascii_slug(family)}", practice.domain)
        return self.row(MailboxType.CAB, address, practice, person=person)

    def org(self) -> ExtractRow:
        organisation = self.rng.choice(self.organisations)
        service = self.rng.choice(organisation.kind.services)
        address = self.unique_address(ascii_slug(service).replace("-", "."),
                                      organisation.domain)
        return self.row(MailboxType.ORG, address, organisation, service=service)

    def app(self) -> ExtractRow:
        organisation = self.rng.choice(self.organisations)
        service, local = self.rng.choice(APP_SERVICES)
        address = self.unique_address(local, organisation.domain)
        return self.row(MailboxType.APP, address, organisation, service=service)


def generate_rows(count: int, *, seed: int = 0) -> Iterator[ExtractRow]:
    """``count`` plausible rows, the same for the same ``count`` and ``seed``.

    Memory grows with ``count`` only through the set of addresses already used.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    generator = _Generator(seed, count)
    makers = {MailboxType.PER: generator.per, MailboxType.ORG: generator.org,
              MailboxType.APP: generator.app, MailboxType.CAB: generator.cab}
    types = tuple(t for t, _ in TYPE_MIX)
    cdf = _cumulative([share for _, share in TYPE_MIX])
    for _ in range(count):
        yield makers[generator.pick_weighted(types, cdf)]()
