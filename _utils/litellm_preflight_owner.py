"""
The preflight's ownership check: nothing the deploy would create (paths,
unit, user, group) exists on the host unless the formula's record lists it
as its own (``litellm_owner``). The same decision as the
``litellm-owner-record-checked`` gate, reported with the other checks.
"""


def check_ownership(ctx, settings):
    decided = ctx.owner(settings)
    if decided is None:
        return "skip", "the litellm_owner execution module is not loaded"
    if decided["problems"]:
        return "fail", "; ".join(decided["problems"])
    return "pass", (
        f"no takeover: {len(decided['claims'])} path(s), unit(s) or account(s) to create, "
        "the rest is the formula's own"
    )
