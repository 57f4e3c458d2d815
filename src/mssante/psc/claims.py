"""The person claims of a professional, as Pro Santé Connect gives them, read from the
national directory the trust space serves.

MSSanté reference, "Pro Santé Connect": ``SubjectNameID`` (= ``preferred_username``) is
the idNatPs (``8`` + RPPS, or ``0`` + ADELI); ``given_name``, ``family_name``;
``SubjectRefPro`` holds ``exercices[]`` (profession, savoir-faire, names of practice),
each with ``activities[]`` (the structures where the professional practises). The
directory knows one exercise per professional (its profession and main savoir-faire)
and their practice roles; what it does not know (mode of practice, sector, role) is
left out rather than invented.
"""

from __future__ import annotations

from typing import Any, Protocol

from mssante.directory.model import Organisation, Practitioner


class Referential(Protocol):
    """What the claims need of the national directory (``DirectoryStore`` is one)."""

    async def get_practitioner(self, id_nat_ps: str) -> Practitioner | None: ...

    async def organisations_of(self, id_nat_ps: str) -> list[Organisation]: ...


def activity(organisation: Organisation) -> dict[str, str]:
    out = {"ancienIdentifiantDeLaStructure": organisation.id_nat_st,
           "raisonSocialeSite": organisation.legal_name,
           "enseigneCommercialeSite": organisation.trade_name,
           "codePostal": organisation.postal_code}
    if organisation.id_type == "1":
        out["numeroFinessSite"] = organisation.national_number
    elif organisation.id_type == "3":
        out["numeroSiretSite"] = organisation.national_number
    return out


def person_claims(practitioner: Practitioner,
                  organisations: list[Organisation]) -> dict[str, Any]:
    """``SubjectNameID``, ``preferred_username``, names and ``SubjectRefPro``."""
    exercise = {
        "codeProfession": practitioner.profession_code,
        "codeCategorieProfessionnelle": practitioner.profession_category,
        "codeCiviliteDexercice": practitioner.civility,
        "nomDexercice": practitioner.family_name,
        "prenomDexercice": practitioner.given_name,
        "codeTypeSavoirFaire": "S" if practitioner.skill_code else "",
        "codeSavoirFaire": practitioner.skill_code,
        "activities": [activity(o) for o in organisations],
    }
    return {
        "SubjectNameID": practitioner.id_nat_ps,
        "preferred_username": practitioner.id_nat_ps,
        "given_name": practitioner.given_name,
        "family_name": practitioner.family_name,
        "SubjectRefPro": {"codeCivilite": practitioner.civility, "exercices": [exercise]},
    }


async def claims_of(referential: Referential, id_nat_ps: str) -> dict[str, Any] | None:
    """The claims of the professional, or None when the directory does not know them."""
    practitioner = await referential.get_practitioner(id_nat_ps)
    if practitioner is None:
        return None
    return person_claims(practitioner, await referential.organisations_of(id_nat_ps))
