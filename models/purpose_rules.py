"""Weak-labelling functions for a post's *purpose*: which team should see it.

No public labelled set covers earshot's purposes, so the training data for the purpose head is
built by these rules. Each purpose has one labelling function that votes *yes* when a post holds
a phrase that, on real tweets, almost always means that purpose. They are designed for precision,
not recall: a vote should be right at least 85% of the time (hand-checked on real posts, see
``models/purpose_rules_audit.json``), and missing most posts of a purpose is fine because the
head trained on the votes generalises beyond the phrases. They are *not* the classifier:
inference uses the trained head, never these rules.

Every function is pure (text in, ``bool`` out) and uses only ``re``. Patterns are compiled once at
import and word-bounded. Matching is case-insensitive: each post is read once, normalised
(HTML entities, curly apostrophes, links, handles) and lower-cased, and the phrase patterns are
written in lower case; that is twice as fast as ``re.IGNORECASE`` on alternations this large.
Only the cashtag and "EPS" patterns read the original case, because there case is the signal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from models.tasks import PURPOSES

_HTML_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&apos;": "'"}
_ENTITY = re.compile("|".join(map(re.escape, _HTML_ENTITIES)), re.IGNORECASE)
_URL = re.compile(r"https?://\S+|\bwww\.\S+|\b(?:bit\.ly|t\.co|ow\.ly|goo\.gl|tinyurl\.com)/\S+", re.IGNORECASE)
_CURLY_QUOTE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
_HANDLE = re.compile(r"(?<![\w@])@\w{1,50}")
_LEADING_HANDLES = r"^[\s\"'.]*(?:rt\s+)?(?:@user[\s,:]*)+"  # the post opens by addressing someone
_ADDRESSED_ONE = r"^[\s\"'.]*@user\b(?![\s,:]*@)"  # exactly one account: a brand, not a reply thread


def _any(*patterns: str) -> re.Pattern[str]:
    """One compiled alternation of lower-case phrase patterns (each a phrase family)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def normalise_for_rules(text: str) -> str:
    """The post as the rules read it: entities decoded, apostrophes straightened, links dropped,
    every handle written ``@user`` (TweetEval's convention). Case is kept.

    Links and handle names go because a URL's slug ("/scam-alert") or an account's name
    ("@counterfeitrock") would otherwise trigger a phrase the author never wrote. That a post
    *addresses* someone stays visible (``@user how do I ...``), and hashtags stay as written:
    ``\\b`` treats ``#`` as a boundary, so ``#recall`` reads as "recall".
    """
    text = _ENTITY.sub(lambda m: _HTML_ENTITIES[m.group(0).lower()], text)
    text = text.translate(_CURLY_QUOTE)
    text = _URL.sub(" ", text)
    return _HANDLE.sub("@user", text)


class _Post(NamedTuple):
    raw: str  # as published: links and hashtags are counted here
    text: str  # normalised, case kept: cashtags and "EPS"
    lower: str  # normalised and lower-cased: what the phrase patterns read


def _read(text: str) -> _Post:
    normalised = normalise_for_rules(text)
    return _Post(text, normalised, normalised.lower())


# -- customer_care: complaints and support questions --------------------------------------------
_SUPPORT_QUESTION = re.compile(
    _LEADING_HANDLES
    + r"(?:(?:hi|hello|hey|ok|so|yo|um+)\W+)?(?:"
    r"how (?:do|can|should|would|will) (?:i|we)\b(?! (?:ever|even|think|feel|know|say|tell)\b)"
    r"|why (?:is|does|did|won't|can't|isn't|hasn't|haven't|wasn't|doesn't|didn't) (?:my|our|your|it)\b"
    r"|why (?:can't|won't|couldn't) (?:i|we)\b"
    r"|where (?:is|are|'s) (?:my|our)\b"
    r"|when (?:will|is|are|does|do|can) (?:my|our|i|we)\b"
    r"|(?:can|could) (?:you|u|someone|somebody|anyone) (?:please |pls |plz )?(?:help (?:me |us )?(?:with"
    r"|to (?:fix|find|get|resolve|sort|change|cancel|rebook|access|reset|recover|track|locate))|help\W*$|assist"
    r"|look into|check on|fix|explain (?:why|how|what|my|the|this)|tell me (?:why|how|when|if|where))"
    r"|is there (?:a|any) ?way (?:to|i|we|for)"
    r"|who (?:do|can|should) (?:i|we) (?:contact|call|email|speak|talk|complain)"
    r"|(?<=@user )(?<!@user @user )(?:please |pls |plz )?help\b(?=\s*(?:[!?.]|$|please|pls|me with|with my"
    r"|needed|asap))"
    r")"
)
_COMPLAINT = _any(
    r"\bstill waiting (?:for|on) (?:my|a|the|your|our|an|any) (?:\w+ )?(?:refund|order|package|parcel|delivery"
    r"|bags?|luggage|suitcase|response|reply|call ?back|e-?mail|agent|replacement|technician|engineer|answer"
    r"|update|confirmation|money|credit|voucher|reimbursement|compensation)\b",
    r"\bstill no (?:response|reply|answer|refund|word|update|call ?back)\b",
    r"\b(?:no|zero|never got an?) (?:response|reply|answer|call ?back) (?:from|to) (?:you|your|@user|customer|my)\b",
    r"\blost (?:my|our) (?:bags?|luggage|suitcases?|baggage)\b",
    r"\b(?:lost|missing|damaged|delayed) (?:luggage|baggage|suitcases?)\b",
    r"\b(?:my|our|the) flight (?:was |is |got |has been |had been |been )?(?:delayed|cancell?ed|canceled"
    r"|overbooked|diverted)\b",
    r"\b(?:delayed|cancell?ed|canceled) (?:my|our) (?:\w+ )?flights?\b",
    r"\bcancell?ed flightl?ed\b|\blate flightr?\b",  # the airline corpus's own rewrite of "cancelled"/"late"
    r"\bmissed (?:my|our) (?:connecting flight|connection)\b|\bstuck (?:on the tarmac|at the gate|on the plane)\b",
    r"\bworst (?:customer )?(?:service|support|experience|airline)\b",
    r"\b(?<!\bnot )(?<!\bno )(?:terrible|horrible|awful|poor|bad|pathetic|lousy|horrendous|appalling|rude"
    r"|unhelpful|disgraceful|shocking|atrocious|abysmal) (?:customer )?(?:service|support)\b",
    r"\bcustomer (?:service|care|support) (?:is|was|has been) (?:terrible|horrible|awful|a joke|useless"
    r"|non-?existent|pathetic|the worst|so bad|appalling)\b",
    r"\b(?:been )?on hold (?:for )?(?:over |almost |nearly |about )?(?:\d+|an|two|three|four|five) (?:min|mins"
    r"|minutes|hour|hours|hrs?)\b|\bbeen on hold\b",
    r"\bhung up on (?:me|us)\b",
    r"\b(?:want|need|get|demand|demanding|request|requested|requesting|waiting (?:for|on)|where is|deserve"
    r"|owe me|owes me|issue|give me) (?:a |my |me a |me my |me |us a |our |full |the )?refunds?\b",
    r"\brefund (?:me|my|our)\b|\b(?:no|still no|full|where is my|for my|about my|process my|get my) refund\b"
    r"|\bmy refund (?:is|has|hasn't|still|was|never|request)\b",
    r"\b(?:charged|billed) (?:me |us )?(?:twice|double|two times)\b|\bdouble[- ]charged\b|\bovercharged\b",
    r"\b(?:my|our) (?:order|package|parcel|delivery|item|shipment|replacement) (?:hasn't|has not|never"
    r"|still hasn't|still has not|didn't|did not|is late|was late|is missing|was missing|arrived damaged"
    r"|arrived broken|still isn't|still not)\b",
    r"\b(?:haven't|hasn't|have not|has not|never|still not|still haven't) (?:received|been delivered|arrived)\b",
    r"\b(?:can't|cannot|unable to|won't let me) (?:log ?in|sign ?in|login|access my|reset my|check ?in)\b",
)
_CARE_REPLY = _any(  # a brand's care team answering in public: the conversation is customer care
    r"\b(?:please |pls )?(?:dm|message|direct message) us (?:your|the|with|a|more)\b",
    r"\b(?:follow|dm) (?:and dm|us) (?:your|the|with) (?:confirmation|booking|order|reference|account|details"
    r"|email|number)\b",
)


def _customer_care(post: _Post) -> bool:
    return any(pattern.search(post.lower) for pattern in (_SUPPORT_QUESTION, _COMPLAINT, _CARE_REPLY))


# -- sales_lead: purchase intent, price and availability questions ------------------------------
_PRODUCT = (
    r"(?:phone|iphone|ipad|ipod|mac|macbook|laptop|computer|pc|tablet|kindle|galaxy|note \d|nexus|pixel|"
    r"surface|xbox|ps4|ps3|playstation|console|camera|tv|television|car|truck|watch|apple watch|headphones|"
    r"printer|router|fridge|bike|mattress|sofa|speaker)s?"
)
_FIRST_PERSON = r"\b(?:i|i'm|im|i am|i'll|we|we're|we are|we'll|me)"
_PURCHASE_INTENT = _any(
    # "Thinking of upgrading to X? Think twice" is a headline asking the reader, not intent
    r"\b(?:thinking|thinkin|think) (?:of|about) (?:buying|getting|purchasing|ordering|pre-?ordering|switching"
    r"|upgrading|trading in)\b(?![^.!?,\n]{0,60}\?)",
    _FIRST_PERSON +
    r"(?: \w+){0,2} (?:thinking|thinkin) (?:of|about) (?:buying|getting|purchasing|ordering|pre-?ordering"
    r"|switching|upgrading)\b",
    # first person only: "Google is going to buy Uber" is an acquisition, not a lead
    _FIRST_PERSON +
    r"(?: \w+){0,2} (?<!not )(?<!never )(?:want|wanna|going|gonna|plan|planning|about|looking|hoping|trying"
    r"|ready|saving up) to (?:buy|purchase|pre-?order|switch to|switch over to|upgrade to)\b",
    _FIRST_PERSON +
    r"(?: \w+){0,2} (?<!not )(?:want|wanna|going|gonna|plan|planning|trying|need|needs) to order (?:a|an|the|my"
    r"|some|one|new)\b",
    r"\b(?:i|we)(?:'m| am|'ll| will| might| may| need to| want to| wanna| gonna| should)? (?:get|getting|buy"
    r"|buying) (?:a|an|the) new " + _PRODUCT + r"\b",
    r"\bshould (?:i|we) (?:buy|purchase|order|pre-?order|upgrade|switch)\b|\bshould (?:i|we) get (?:a|an|the|one"
    r"|it|this|that)\b",
    r"\b(?:is|are) (?:it|this|that|they|these|those|the [\w-]+(?: [\w-]+)?) (?:still )?(?:available|in stock"
    r"|sold out)\b.{0,30}\?",
    r"\b(?:back|be) in stock\b|\bin stock\?",
    r"\bdo (?:you|u|y'all|you guys) (?:ship|deliver|sell|stock) (?:to|in|it|them|this|the|a|an|any|gift)\b"
    r"|\bdo (?:you|u|y'all|you guys) do (?:any )?(?:discounts?|deals?|delivery|student|military)\b",
    r"\bwhere (?:can|do|could|should|would) (?:i|we|one) (?:buy|purchase|order|pre-?order)\b|\bwhere (?:can|do"
    r"|could|should|would) (?:i|we|one) (?:get|find) (?:a|an|the|one|it|this|that|these|those|tickets?|your"
    r"|some)\b(?! (?:update|answer|help|refund|info|information|reply|response|human|person|agent)\b)",
    r"\b(?<!\bby )(?:switching|moving|defecting) (?:over )?(?:from @user |from \w+ )?to (?:@user|iphone|android"
    r"|apple|samsung|verizon|t-mobile|sprint|at&t|mac|windows|pc)\b",
    r"\bmy next (?:phone|laptop|car|tablet|computer|tv|console|camera|watch|smartphone|mobile)\b",
    r"\b(?:torn|deciding|debating|choosing|undecided) between\b(?=[^.!?\n]{0,60}(?:@user|" + _PRODUCT +
    r"|\b(?:samsung|sony|apple|android|nokia|htc|lg|motorola|nike|adidas)\b))",
    r"\bwhich (?:phone|laptop|tablet|camera|car|one|model|version|plan) (?:should|do you think) (?:i|we)\b",
    r"\b(?:any|need|want|looking for) (?:good )?recommendations? (?:for|on) (?:a|an|good|which)\b",
    r"\b(?:is|are) (?:it|they|the [\w-]+|this|that) worth (?:buying|getting|the money|the upgrade"
    r"|upgrading)\b.{0,20}\?",
    r"\b(?:anyone|anybody) (?:selling|got|have|has) (?:a |an |any |extra |spare |\d |two )?tickets?\b",
    _FIRST_PERSON +
    r" (?:\w+ )?(?:need|want|am looking for|are looking for|looking for) (?:\d+|a|two|some|extra|spare"
    r"|cheap) tickets?\b",
    r"\blooking (?:to buy|to purchase|for a new " + _PRODUCT + r")\b",
    r"\b(?:can't|cannot|can not) wait to buy (?:my|the|a|an|one|it)\b",
    r"\b(?:when|how|where) (?:can|do) (?:i|we) (?:pre-?order|buy|order|purchase)\b|\bcan (?:i|we) (?:book|buy"
    r"|purchase|order|pre-?order) (?:a|an|the|tickets?|flights?|seats?|one|it)\b",
    _FIRST_PERSON +
    r"(?: \w+){0,2} (?<!not )(?:want|wanna|going|gonna|plan|planning|trying|tried|hoping|need|looking|about"
    r"|ready) to book (?:a |an |the |my |our |some |two |\d )?(?:\w+ )?(?:flights?|tickets?|trips?|hotel|room"
    r"|seats?|vacation|holiday|cruise|table)\b",
    r"\b(?:i'll|i will|i'm|i am|im|we're|we'll|we will) (?!not\b)(?:\w+ )?(?:buying|ordering|pre-?ordering|buy"
    r"|order|pre-?order) (?:a|an|the|my|one|some|tickets?|it|them|these|those)\b(?! (?:gas|popcorn|drinks?|food"
    r"|lunch|dinner|beers?|pizza|first round|next round)\b)",
    r"\b(?:i'm|i am|im|we're) (?:\w+ )?getting (?:a |an |the |my )?(?:new )?" + _PRODUCT + r"\b",
    _FIRST_PERSON + r" (?:really |so )?(?:need|want|wanna) (?:a|an|the|that|one of those|this) new " + _PRODUCT +
    r"\b",
    r"\b(?:when|will) (?:will |are |do )?(?:you|u) (?:have|add|start|be) (?:flights?|flying|service|non-?stops?"
    r"|direct flights?) (?:to|from|between)\b|\bwhen (?:are|will) (?:you|u) (?:be )?flying (?:to|into)\b"
    r"|\bdo (?:you|u) (?:fly|have flights?) (?:to|from|into)\b",
    r"\b(?:any|are there any|got any) (?:good )?(?:deals|discounts?|promos?|fare sales?"
    r"|specials)\b(?=[^.!\n]{0,60}\?)",
    r"\bany (?:[\w-]+ )?tickets? (?:still )?(?:left|available)\b",
    r"\bhow much (?:is|are|does|do|would|will|to)\b(?! (?:you|he|she|they|it) (?:think|know|care|love|hate|want"
    r"|bother|affect|look))(?![^?\n]*\b(?:paying|paid|costing|worth)\b)[^?.!\n]{0,60}\b(?:cost|costs|charge|fee"
    r"|fees|price|ticket|tickets|shipping|delivery|postage|baggage|bag|bags|wifi|upgrade|it|plan|subscription"
    r"|membership|seat|seats)\b[^?.!\n]{0,40}\?",
)
_TAKEN_BACK = re.compile(r"#notreally\b|#sarcasm\b|\bjk\b|\bjust kidding\b")  # "may consider buying ... #notreally"


def _sales_lead(post: _Post) -> bool:
    return bool(_PURCHASE_INTENT.search(post.lower)) and not _TAKEN_BACK.search(post.lower)


# -- product_feedback: suggestions, feature requests, bug reports --------------------------------
_SOFTWARE = (
    r"(?:app|apps|update|ios|ios ?\d+|android|software|game|website|site|browser|system|itunes|safari|chrome"
    r"|firmware|program|feature|screen|keyboard|laptop|phone|iphone|ipad|mac|wifi|wi-fi|kiosk)"
)
_OFFERING = (
    r"(?:app|apps|site|website|option|options|feature|features|flights?|service|seats?|wifi|wi-fi|menu|store|stores|"
    r"update|version|button|setting|settings|booking|check-?in|delivery|payment|price|prices|agent|agents|ticket|"
    r"frequency|destinations?|sizes?|flavou?rs?|sequel|movie|season|"
    r"route|routes|ios|android|iphone|ipad|phone|emojis?|keyboard|screen|battery|customer service|support|"
    r"software|product|products|account|login|checkout|search|notifications?|interface|ui)"
)
_FEEDBACK = _any(
    # "please fix my booking" is a care request; "please fix your app" is feedback
    r"\bplease (?:add|include|allow|bring back|make)\b(?! (?:me|us|him|her|them|you"
    r"|your ears)\b)(?=[^.!?\n]{0,50}\b" + _OFFERING + r"\b)",
    r"\bplease (?:fix|update|improve) (?:your|the|this|that) (?:[\w-]+ ){0,2}(?:" + _OFFERING + r"|" + _SOFTWARE +
    r"|bug|bugs|glitch|typo|issue with)\b",
    # "would be nice if" is feedback only when it is about something on offer
    r"\b(?:would|it'd|it would|will) be (?:so |really |very |super )?(?:great|nice|awesome|cool|good|amazing"
    r"|helpful|useful|lovely) if\b(?=[^.!?\n]{0,80}\b" + _OFFERING + r"\b)",
    r"\bwish (?:@user|you|u|they|the [\w-]+|it|this [\w-]+) (?:would|could) (?:add|make|bring|let|allow|fix"
    r"|offer|sell|stock|support|update|change|improve|have)\b",
    r"\bwish (?:it|the (?:" + _SOFTWARE + r"|" + _PRODUCT + r")|my (?:" + _SOFTWARE + r"|" + _PRODUCT +
    r")) (?:had|came with|supported|worked|would work|did)\b",
    r"\bwish there (?:was|were|is) (?:a|an) (?:option|setting|button|feature|app|version)\b",
    r"\bfeature requests?\b|#featurerequest\b",
    r"\b(?:found|there's|there is|reporting|report|noticed) a (?:\w+ )?bug\b",
    r"\bbugs? (?:in|with|on|where|when) (?:the|your|my|this|ios|android|it|@user)\b",
    r"\b(?:is|so|really|very|too) buggy\b|\bbuggy (?:app|update|software|game|release|mess|as hell)\b",
    r"\b" + _SOFTWARE +
    r" (?:keeps |just |always |still )?(?:crash(?:es|ed|ing)?|freez(?:es|ing)|froze|lags?|lagging)\b",
    r"\bkeeps? (?:crashing|freezing|closing|restarting|rebooting|glitching|logging me out|dropping)\b",
    r"\bcrash(?:es|ed|ing)? (?:when|every ?time|whenever|on (?:startup|launch|start))\b",
    r"\b(?:" + _SOFTWARE + r"|" + _OFFERING +
    r"|system|tracking) (?:is |was |so |still |very )*glitch(?:y|ing)\b|\bglitch(?:es|y)? (?:in|with|on) (?:the"
    r"|your|my|this) (?:" + _SOFTWARE + r"|" + _OFFERING + r")\b|\bglitchy (?:" + _SOFTWARE + r"|" + _OFFERING +
    r")\b",
    r"\bstopped working\b|\bdoesn't work (?:since|after|anymore)\b|\bwon't (?:load|open|sync|update|connect"
    r"|charge)\b",
    r"\b(?:since|after) (?:the|this|your|my|an|installing the) (?:latest |new |last |recent )?(?:software |ios "
    r"|app )?(?:update|upgrade)\b|\bsince (?:updating|upgrading) (?:to|my)\b",
    r"\b(?:you|u|@user|apple|google|samsung|microsoft) (?:should|need to|needs to|ought to|have to) (?:add"
    r"|bring back|let us|allow|include|release|update|fix|improve)\b(?! (?:me|us|him|her"
    r"|them)\b)(?!.{0,30}\bto my\b)",
    r"\b(?:you|u|they|@user|apple|google|samsung|microsoft) (?:should|need to|needs to|ought to) make (?:a|an"
    r"|another|a new|more|your)\b",
    r"(?:" + _ADDRESSED_ONE + r"|\bdear @user\b|\bplease\b).{0,100}\bbring back\b",  # asked of someone who can
    r"\b(?:my |a |one )?suggestions? (?:for|to) (?:@user|you|u|improve)\b|\bsuggestion box\b",
    r"\b(?:fix|improve|update) (?:your|the) (?:app|website|web site|site|wifi|wi-fi|software|system|ui|interface"
    r"|search|checkout|battery|kiosks?|phone system|booking system|seats)\b",
    r"\b(?:your|the) (?:app|website|site|update|software|system|wifi|wi-fi|kiosk|interface|checkout|new layout"
    r"|new design) (?:is |was )?(?:so |really |still |completely |totally )?(?:broken|unusable|useless|a mess"
    r"|garbage|having issues)\b",
    r"\b(?:my |the )?battery (?:life )?(?:sucks|is terrible|is awful|drains|is draining|dies so fast)\b",
    r"\b(?:app|website|site|wifi|wi-fi|checkout|system|search) (?:is |was )?(?:so |really |super )?(?:slow"
    r"|laggy)\b|\bwhy (?:doesn't|does not|can't|won't|isn't) (?:the|your) (?:app|site|website|kiosk"
    r"|system) (?:let|allow|work|load|support|have|show)\b",
    # told to the brand itself: "@united ... the new seats are bad", not "the food is disgusting" in a news story
    _ADDRESSED_ONE +
    r"[^\n]{0,140}\b(?:seats?|legroom|leg room|food|snacks?|meals?|wifi|wi-fi|entertainment|blankets?|cabin"
    r"|coffee|planes?|interface|layout|design|menu)\b (?:are|is|was|were) (?:so |really |very |super |too "
    r"|extremely )?(?:uncomfortable|cramped|tiny|terrible|awful|horrible|disgusting|gross|bad|slow|outdated"
    r"|dirty|confusing|overpriced)\b",
    # a named part of the product that does not work: a defect report
    r"\b(?:app|apps|website|web site|site|wifi|wi-fi|ipad|iphone|ipod|laptop|screen|keyboard|charger|battery"
    r"|itunes|icloud|update|software|kiosk|tv|entertainment system|headphones|camera|touch ?id|siri|maps|macbook"
    r"|speakers?|armrest|controller|wireless|app store)\b[^.!?\n]{0,30}\b(?:not|isn't|doesn't|does not|won't"
    r"|wont|will not|can't|stopped|stops) (?:working|work|load|loading|charging|charge|sync|syncing|connect"
    r"|connecting|open|opening|updating|responding|turn on)\b",
)


def _product_feedback(post: _Post) -> bool:
    return bool(_FEEDBACK.search(post.lower))


# -- praise: reviews, recommendations, advocacy -------------------------------------------------
_PRAISE = _any(
    r"\b(?:love|loving|adore) (?:my|our|the|this) new (?:@user|" + _PRODUCT +
    r"|shoes|sneakers|kicks|jacket|bag|glasses|case|app|update|look|dress|boots)\b",
    r"\b(?:highly|totally|definitely|strongly|thoroughly|100%|absolutely|really|would) recommend(?:ed)?\b",
    r"\b(?<!\bnot )(?<!\bno )(?<!\bwhat )(?:best|great|amazing|excellent|awesome|fantastic|outstanding|wonderful"
    r"|superb|exceptional|stellar|top notch|top-notch|incredible|phenomenal|impeccable|brilliant|friendly"
    r"|helpful|lovely) (?:customer )?(?:service|support|crew|staff|flight attendants?|pilots?)\b",
    r"\b(?:thank you|thanks|thx|ty|thank u|thankyou) (?:so much |very much )?(?:@user ?)+(?:for|!|so much)",
    r"\b(?:gave|give|giving|rate|rated|rating|deserves?) (?:it |them |you |\w+ )?(?:5|five)[ -]stars?\b|\b(?:5"
    r"|five)[ -]stars? (?:review|rating|service)\b|#5starservice\b|\b(?:rate|rated|give it|solid) (?:a )?10/10\b"
    r"|\b10/10 (?:would|recommend)\b",
    r"\b(?:kudos|props|hats off|big ups) (?:to|2) (?:@user|the)\b|\b(?:shout ?-?outs?|s/o) (?:to|2) @user\b",
    r"(?:^[\s\"'.]*@user (?:[^@]*\W)?|\bthank you |\bthanks )(?:you guys|y'all|you all|u guys) (?:rock"
    r"|are the best|r the best|are awesome|are amazing|are great|nailed it|never disappoint)\b",
    r"@user (?:is|are|rocks|rock) (?:the best|awesome|amazing|great|the greatest)\b",
    r"\b(?:best|greatest|favou?rite) (?:airline|phone|app|company|brand|product|restaurant|coffee|burger|pizza"
    r"|store|shop|hotel|car|laptop|customer service) (?:ever|in the world|out there|hands down|by far"
    r"|on the planet|in town)\b",
    r"\b(?:is|are) my (?:favou?rite|fave|fav) (?:airline|phone|app|brand|store|shop|restaurant|company|coffee"
    r"|place)\b",
    r"\b(?:i|we) (?:love|adore|<3) @user\b",
    r"\b(?:impressed|happy|pleased|delighted|thrilled|obsessed) with (?:my|the|this|our) (?:new )?(?:@user|" +
    _PRODUCT + r"|service|purchase|order)\b",
)
# Sarcasm reads as praise ("thanks @united for losing my bag"); a complaint cue vetoes the vote.
_PRAISE_VETO = _any(
    r"\b(?:lost|losing|lose|delay|delayed|cancel|cancell?ed|canceled|stuck|stranded|waiting|wait|nothing|never"
    r"|worst|ruin|ruined|ruining|rude|terrible|awful|horrible|missed|broken|charged|fail|failed|sucks|not|no"
    r"|nope|hours|seriously|smh|ugh|wtf|#fail|joke|ridiculous|useless|disappointed|disappointing|scam\w*|ripped"
    r"|rip-?off|stupid\w*|idiot\w*|#brilliant|#sarcasm|sarcasm|thanks a lot|last word|hung up|hang up|full price"
    r"|how hard|amazing how|funny how|love how|great job|less than|yet another|crash|crashed|crashes|fuck"
    r"|fucking|unlike)\b",
    r"n't\b",  # "couldn't", "wasn't": negated praise is rarely praise
)


def _praise(post: _Post) -> bool:
    return bool(_PRAISE.search(post.lower)) and not _PRAISE_VETO.search(post.lower)


# -- press: journalists and bloggers asking for comment, contacts or interviews ------------------
_PRESS = _any(
    r"\b(?:i'm|i am|im|we're|we are) (?:a |an )?(?:freelance |tech |business |travel |food |fashion "
    r"|local )?(?:journalist|reporter|blogger|producer|editor|correspondent)s? (?:with|at|for|from|working"
    r"|writing|looking|researching)\b",
    r"\bas a (?:journalist|reporter|blogger) (?:i|writing|working|who)\b",
    r"(?:^|[.!?]\s+|\bi'm |\bi am |\bwe're |\bwe are |\bcurrently |\bnow |\bam )(?:writing|researching"
    r"|working on|putting together|doing|producing|preparing) (?:a|an|my|our) (?:\w+ )?(?:piece|story|article"
    r"|feature|report|blog post|blog|segment|documentary|column|news story) (?:on|about|for)\b",
    r"\bfor (?:a|an|my|our) (?:news |magazine |tv |radio )?(?:story|article|piece|segment|documentary"
    r"|report) (?:on|about)\b",
    r"\bpress (?:contact|enquir(?:y|ies)|inquir(?:y|ies)|department|dept|request)\b",
    r"\b(?<!social )(?:media|communications|comms) (?:contact|enquir(?:y|ies)|inquir(?:y|ies)|request)s?\b"
    r"|\b(?:talk|speak) (?:in|to|with) (?:the|your) (?:pr|press|media) (?:department|dept|team|office)\b",
    r"\binterview requests?\b|\brequest(?:ing)? (?:an|for an?) interview\b",
    r"\b(?:can|could|may) (?:i|we) (?:interview|quote) (?:you|someone|somebody)\b",
    r"\b(?:request|requests|asked|reached) (?:you |him |her |them )?for (?:a )?comment\b|\bcomment for (?:a|an"
    r"|my|our) (?:story|article|piece|report)\b",
    r"#(?:journorequest|prrequest|bloggerrequest|mediarequest|journorequests)\b",
)


def _press(post: _Post) -> bool:
    return bool(_PRESS.search(post.lower))


# -- investor: earnings, guidance, analyst ratings, share price, cashtags ------------------------
# case-sensitive: "$AAPL", never "$3.39"; "$US" and friends are currencies, not tickers
_CASHTAG = re.compile(r"(?<![\w$&*])\$(?!(?:US|USD|CAD|AUD|NZD|HK|HKD|SG|SGD|NT|R|A|C)\b)[A-Z]{1,5}(?:\.[A-Z])?\b")
_EPS_OR_PT = re.compile(r"\bEPS\b|\bPT (?:raised|lowered|cut|to|of)\b")  # upper case only: "eps" are TV episodes
_RATING = (
    r"(?:buy|sell|hold|neutral|outperform|underperform|overweight|underweight|equal[- ]weight|market perform"
    r"|strong buy|accumulate|reduce)"
)
_INVESTOR = _any(
    r"\bearnings (?:call|report|reports|season|beat|miss|per share|preview|date|results|release|estimates?"
    r"|surprise|growth|guidance|announcement|whisper|plays?|rose|fell|jumped|dropped|up|down|topped)\b",
    r"\b(?:quarterly|q[1-4]|[1-4]q|fourth[- ]quarter|third[- ]quarter|second[- ]quarter|first[- ]quarter"
    r"|full[- ]year|annual|strong|weak|better[- ]than[- ]expected|disappointing|record|net) (?:earnings|results"
    r"|profits?|revenues?|loss|sales)\b",
    r"\b(?:ahead of|after|beat|beats|missed|misses|reports?|reported|posted|posts) (?:its |their |q[1-4] "
    r"|quarterly )?earnings\b",
    r"\b(?:raises?|raised|lowers?|lowered|cuts?|reaffirms?|reaffirmed|issues?|issued|maintains?|withdr[ae]w"
    r"|full[- ]year|annual|revenue|sales|earnings|profit|forward|fy\d*|q[1-4]) guidance\b",
    r"\bprice targets?\b",
    r"\b(?:upgrade[sd]?|downgrade[sd]?|initiate[sd]?|reiterate[sd]?)\b.{0,50}\b(?:to|at|with|as) (?:a |an )?" +
    _RATING + r"\b(?! (?:a|an|the|my|your|it|one)\b)",
    r"\b" + _RATING + r" rating\b",
    r"\b(?:shares|stock) (?:of [\w.]+ )?(?:rose|fell|jumped|dropped|surged|slid|climbed|tumbled|plunged|soared"
    r"|sank|slumped|rallied|gained|are up|are down|were up|were down|is up|is down|up|down|higher|lower)\b(?= \d"
    r"| sharply| slightly| on | after| premarket| percent| today| more than| nearly)(?<!\bstock up)",
    r"\bstock (?:price|prices|market|markets|buyback|split|options|exchange)\b|\bshare (?:price|prices|buyback"
    r"|repurchase)\b",
    r"\bmarket (?:cap|capitali[sz]ation|valuation)\b",
    r"\b(?:pays?|paid|raises?|raised|cuts?|quarterly|annual|special|declares?|declared|increases?|increased"
    r"|boosts?|hikes?) (?:a |an |its |the |their )?(?:quarterly |annual |special |cash )?dividends?\b",
    r"\bdividend (?:yield|stocks?|payout|increase|hike|cut|growth|investing|investors?|aristocrats?)\b",
    r"\b(?:ipo|initial public offering)\b",
    r"\b(?:investors?|shareholders?|stockholders?)\b",
    r"\b(?:wall street|equity|stock|sell-side|financial) analysts?\b|\banalysts'? (?:estimates?|expectations?"
    r"|consensus|forecasts?|polled)\b|\bwall street (?:expectations?|estimates?|forecasts?)\b",
    r"\b(?:nasdaq|nyse|dow jones|s&p 500|ftse 100|nikkei|hang seng)\b",
    r"\b(?:revenues?|profits?|net income|operating income|net loss) (?:rose|fell|jumped|dropped|surged|slid"
    r"|climbed|grew|declined|beat|missed|topped|increased|decreased)\b",
    r"\bstocks? to (?:buy|watch|sell)\b|\b(?:bought|buying|sold|selling) (?:more |some )?shares\b",
)


def _investor(post: _Post) -> bool:
    return bool(_CASHTAG.search(post.text) or _EPS_OR_PT.search(post.text) or _INVESTOR.search(post.lower))


# -- employer: jobs, hiring, staff and workplace ------------------------------------------------
_EMPLOYER = _any(
    r"\b(?:we're|we are|is|are|now|currently|still|they're) hiring\b|#(?:hiring|nowhiring|jobsearch|careers"
    r"|jobopening|internship|jobfair)\b",
    r"\bjob (?:openings?|opportunit(?:y|ies)|offers?|interviews?|fairs?|postings?|alerts?|vacanc(?:y|ies)"
    r"|applications?|listings?|hunt(?:ing)?|search(?:ing)?|seekers?|cuts|losses)\b",
    r"\b(?:career|job|jobs) (?:fair|day|open house|expo)s?\b|\bcareer (?:opportunit(?:y|ies)|development)\b",
    r"\bapply (?:now|today|here|online)\b(?=.{0,80}\b(?:job|jobs|position|positions|role|roles|career|careers"
    r"|vacanc(?:y|ies)|hiring|internships?|opening|openings)\b)|\b(?:job|jobs|position|positions|role|roles"
    r"|career|careers|vacanc(?:y|ies)|hiring|internships?|opening|openings)\b.{0,80}\bapply (?:now|today|here"
    r"|online)\b",
    r"\b(?:join|joining) our (?:\w+ )?team\b|\binternships?\b|\b(?:hiring|hire|hires|recruiting"
    r"|looking for) (?:\w+ )?interns\b",
    r"\b(?:my|our) (?:boss|bosses|manager|supervisor|workplace|hr department|shift manager)\b",
    r"\blayoffs?\b(?!.{0,30}\b(?:injur|shoulder|knee|ankle|hamstring|groin)\w*)|\blaid off\b|\b(?:cut|cuts"
    r"|cutting|slash|slashes|slashing|shed|sheds|shedding|axe|axes|axing) (?:\d[\d,.]* |thousands of "
    r"|hundreds of )?(?:jobs|staff|workers|employees)\b",
    r"\b(?:i|we|she|he|they|who) (?:work|worked|working|am working|was working|used to work|started working"
    r"|start working) at (?:@user|the \w+ store|[\w&']+ (?:store|restaurant|factory|hq|headquarters))\b",
    r"\b(?:go|went|going|are|were|is|was|be|been|staff|workers|teachers|nurses|drivers|pilots|doctors"
    r"|employees) (?:on )?strike\b(?! (?:a pose|gold|out|first|again|back|three))|\bstrike (?:action|vote"
    r"|ballot)\b|\bwalk(?:ed|ing)? ?out\b(?= (?:over|at|in protest))",
    r"\b(?:trade|teachers'?|workers'?|nurses'?|auto|pilots'?) unions?\b|\bunioni[sz](?:e|ed|ing|ation)\b"
    r"|\bunion (?:workers|members|jobs|busting|contract|rep|reps|dues)\b",
    r"\b(?<!\bget a )(?<!\bfind a )(?<!\bhave )(?<!\bhad )(?<!\bwould )(?:new|first|quit|quitting|lost|hate|love"
    r"|dream|part-time|full-time|summer|second|day|full time|part time) job\b|(?<!'ve )(?<!i )\bgot (?:the|a"
    r"|my) job\b(?! (?:to|of)\b)|\b(?:first|last) day (?:at|of) (?:my (?:new )?job|work at|the new job)\b",
    r"\b(?:got|get|getting|been|was|were) fired\b(?! (?:up|at|upon|on))|\bfired me\b|\bfired from (?:my|his|her"
    r"|their|the) job\b",
    r"\b(?:a|my|our|their|her|his) pay (?:rise|raise|cut)\b|\b(?:raise|raised|raises|cut|cuts) (?:my|our|their"
    r"|staff|workers'?|employees'?) (?:pay|wages|salar(?:y|ies))\b",
    r"\b(?:employees?|staff|workers|workforce) (?:protest|walkout|morale|benefits|pay|wages|rights|strike|union"
    r"|layoffs|treatment)\b|\b(?:treat|treats|treated|mistreat|mistreats|mistreated|underpay|underpays"
    r"|underpaid) (?:its |their |the )?(?:employees|staff|workers)\b",
    r"\b(?:hire|hiring) (?:more |enough )(?:staff|people|employees|workers|agents|representatives|reps|pilots"
    r"|crew)\b|\b(?:under-?staffed|short[- ]staffed|staff(?:ing)? shortages?)\b",
    r"\b(?<!\bi )(?:starting|started|landed|offered|accepted|applied for|applying for) (?:a |my "
    r"|this )(?:new )?job\b|(?<!\bhave )(?<!\bhad )\b(?:love|hate|lost|leaving|left) my (?:new |first |current "
    r"|old |day |part-time |full-time |summer )?job\b|\bmy (?:new|first) job\b|\bmy job (?:is|was|sucks"
    r"|interview|search|hunt|offer)\b|\bquit(?:ting)? (?:my|his|her|their) jobs?\b",
    r"\b(?:hr|human resources) (?:department|dept|team)\b|\brecruiters? (?:from|at|with)\b|\b(?:job|tech"
    r"|corporate|hr|company|agency|it) recruiters?\b|\b(?:recruiting|recruitment) (?:for|of) (?:a |an "
    r"|the )?(?:\w+ )?(?:position|role|job|staff|engineers?|managers?|executives?|drivers?|nurses?|agents?"
    r"|associates?)s?\b",
)


def _employer(post: _Post) -> bool:
    return bool(_EMPLOYER.search(post.lower))


# -- risk: safety, outages, recalls, legal, boycotts, fraud, security, counterfeits, misinformation -
_RISK = _any(
    # recalls, not memories: "I recall" and recall elections never pass
    r"#recall\b|\b(?:product|safety|vehicle|car|food|massive|voluntary|nationwide|global|huge|major|mass) recalls?\b",
    r"\brecall(?:s|ed|ing)? (?:of |on )?(?:over |nearly |about |more than )?\d[\d,.]* ?(?:million |thousand |k "
    r"|m )?(?:cars|vehicles|units|products|phones|airbags|batteries|pounds|lbs|bottles|packages|toys|cribs"
    r"|devices|laptops|models|trucks|suvs|cans|jars|bags)\b",
    r"\b(?:issued|issues|issue|announced|announces|expands?|expanded) (?:a )?(?:voluntary )?recall\b|\b(?:is|are"
    r"|being|been|was|were) (?:being )?recalled\b|\brecall notice\b",
    # outages: a named service down, never "calm down" or "down to"
    r"\boutages?\b|\b(?:power|service|network|internet|server) (?:outage|disruption|failure)s?\b",
    r"\b(?:site|app|server|servers|website|network|service|system|systems|email|gmail|twitter|facebook|instagram"
    r"|netflix|xbox live|psn|itunes|icloud|wifi|wi-fi|internet|portal|online banking|atm|atms|web ?site|youtube"
    r"|skype|outlook|hotmail|snapchat|whatsapp|spotify|app store) (?:is |are |was |were |went |goes |still "
    r"|seems |seem )+(?:down|offline)\b(?! (?:to|from|the|by|\d))",
    r"\bis @user down\b|\bdown for (?:everyone|anyone else|maintenance)\b",
    # legal
    r"\blawsuits?\b|\b(?:sued|suing|sues)\b|\b(?:going to|gonna|will|should|could|might|to|can|i'll"
    r"|we'll) sue\b(?! (?:and|&))|\bclass[- ]action\b",
    r"\b(?:legal action|antitrust|anti-trust|injunction)\b|\b(?:patent|copyright|trademark) (?:infringement"
    r"|lawsuit|suit|dispute|violation|troll|war)\b",
    r"\b(?:fined|penali[sz]ed) (?:\$|£|€)?[\d.,]+ ?(?:million|billion|m|bn)\b|\b(?:fined"
    r"|penali[sz]ed) by (?:the )?(?:ftc|sec|fda|eu|european commission|regulators?|government|fcc|faa|ico|cma"
    r"|osha|doj|dot)\b|\b(?:investigation|probe) into (?:the |its |their |a )?(?:company|crash|accident|bank"
    r"|airline|@user|recall|outage|breach|leak|death|deaths|collapse|explosion|fire)\b",
    # boycotts, fraud, scams, counterfeits, misinformation
    r"\bboycott(?:s|ed|ing)?\b",
    # fraud and scams as events, not as insults ("this woman is a fraud", "climate change is a scam")
    r"\bfraud (?:charges?|case|cases|investigation|allegations?|scheme|alert|department|protection|lawsuit|trial"
    r"|claims?|ring)\b|\b(?:charged with|accused of|guilty of|convicted of|pleaded guilty to|investigated for"
    r"|arrested for|committing|committed) (?:\w+ ){0,2}(?<!voter )(?<!election )(?<!electoral )fraud\b",
    r"\b(?:credit card|bank|wire|securities|accounting|insurance|tax|mail|identity|consumer|investment"
    r"|corporate) fraud\b|\bfraudulent (?:charges?|transactions?|activity|claims?|accounts?|e-?mails?|calls?"
    r"|texts?|sites?|websites?)\b",
    r"\bscammed\b|\bscammers?\b|\bscam (?:calls?|e-?mails?|texts?|artists?|alert|sites?|websites?|links?|dms?"
    r"|pages?|accounts?|offers?)\b|\bponzi\b|\bphishing\b",
    r"\bcounterfeit(?:s|ed|ing)?\b|\bknock-?offs?\b|\b(?:fake|pirated|bootleg|replica) (?:products?|goods|items"
    r"|iphones?|shoes|sneakers|bags|handbags|watches|designer|jerseys|merchandise|cosmetics|parts|chargers?"
    r"|versions?|reviews?)\b",
    r"\bfake news (?:about|claiming|regarding) (?:the |our |your |@user)|\b(?:spread|spreading|spreads) (?:false"
    r"|fake) (?:rumou?rs|claims|information) about\b|\bfalse advertising\b|\bhoax (?:about|that|claiming)\b",
    # security incidents, not "I hacked my car" jokes
    r"\b(?:data|security|privacy) (?:breach|breaches|leak|leaks)\b|\bmalware\b|\bransomware\b"
    r"|\bcyber-?attacks?\b|\bddos\b|\bsecurity (?:flaw|hole|vulnerability|vulnerabilities|risk|scare)\b",
    r"\b(?:account|accounts|site|website|server|servers|system|systems|database|network|e-?mails?|data|twitter"
    r"|facebook|instagram|icloud|psn|xbox live|gmail|page|channel) (?:was |were |got |has been |have been |been "
    r"|is |are )?hacked\b|\bhackers? (?:stole|steal|breached|accessed|attacked|behind|targeted|hit|broke|have"
    r"|defeated|leaked)\b|\bhacked (?:into )?(?:the|their|its|millions|\d)",
    # physical safety: fires and explosions of things, food safety, accidents
    r"\b(?:phone|battery|batteries|iphone|galaxy|samsung|laptop|tv|car|tesla|hoverboard|e-?cig|vape|charger"
    r"|device|plant|factory|refinery|pipeline|tank|engine|train|plane|jet|bus|truck|store|warehouse"
    r"|restaurant) (?:\w+ ){0,2}(?:exploded|explodes|exploding|caught fire|catches fire|catching fire"
    r"|burst into flames|went up in flames)\b",
    r"\b(?:fire|explosion|blast) (?:at|in) (?:the |a |an |our |its )?(?:factory|plant|store|warehouse|refinery"
    r"|mine|depot)\b",
    r"\bfood poisoning\b|\bsalmonella\b|\be\.? ?coli\b|\blisteria\b|\bnorovirus\b|\b(?:food|water|product"
    r"|products|meat|milk|beef|chicken|batch|supply|drugs?|medicine|formula) (?:is |was |were |been "
    r"|got )?contaminat(?:ed|ion)\b|\bcontaminated (?:food|water|products?|meat|milk|beef|chicken|batch|drugs?"
    r"|medicine|formula)\b",
    r"\b(?:hair|cockroach|roach|worm|glass|plastic|mold|mould|maggots?|rat|mouse|insect|bug|fly) (?:in|on) (?:my"
    r"|the|our) (?:food|meal|burger|sandwich|salad|drink|coffee|pizza|soup|fries|bowl|chicken|bread|tea|cereal"
    r"|rice)\b",
    r"\b(?:plane|train|bus|helicopter|jet|flight|airliner|aircraft) (?:crash|crashes|crashed|accident"
    r"|derailment)\b|\b(?:self-driving|driverless|autonomous|tesla|uber|google) (?:\w+ )?(?:car |cars |vehicle "
    r"|vehicles )?(?:crash|crashes|crashed|accident|accidents)\b|\bemergency landing\b|\btrain derail(?:ed|ment"
    r"|s)?\b|\bderailment\b|\bcrash[- ]land(?:ed|ing|s)?\b",
    r"\b(?:killed|injured|dead|died|hurt|hospitali[sz]ed) (?:in|after|when|by) (?:a |an |the )?(?:explosion"
    r"|blast|collapse|derailment|stampede|turbulence|defect|faulty)\b",
    r"\b(?:unsafe|dangerous|hazardous|defective|faulty) (?:product|car|vehicle|brakes?|airbags?|batter(?:y|ies)"
    r"|charger|wiring|ignition|toy|crib|seat|food|plane|aircraft)\b|\bsafety (?:issue|concern|hazard|risk"
    r"|problem|violation|scare|investigation|defect)s?\b",
)


def _risk(post: _Post) -> bool:
    return bool(_RISK.search(post.lower))


# -- spam: promotions, giveaways, follow-bait, bots ----------------------------------------------
_SPAM = _any(
    r"\b(?<!\blove a )follow ?back\b(?! (?:so|and) (?:i|i'll|we|we'll) )|#(?:teamfollowback|followback|f4f"
    r"|follow4follow|followtrain|autofollow|500aday|tfb|instantfollow|followme|ff4ff|rt4rt)\b|\bfollow4follow\b",
    r"\b(?<!says )click (?:here|the link|link|below)\b|\blink in (?:my )?bio\b",
    r"\b(?:for (?:a|your) chance to|enter to|rt to|retweet to|follow to|follow and|rt and|retweet and"
    r"|follow & rt|rt &|follow &|enter in to|entered to) win\b|#(?:giveaway|giveaways|contest|competition"
    r"|sweepstakes|freebie|freebies|promo)\b|\bgiveaways?\b|\bsweepstakes\b|\bto giveaway\b",
    r"\bwin (?:a|an) (?:free|brand new|\$\d|£\d|€\d)|\bwin (?:a |an )?(?:free )?(?:gift card|iphone|ipad|voucher"
    r"|trip to)\b",
    r"\bdm (?:me |us )?(?:for|4) (?:promo|promotion|promos|shout ?outs?|s/o|collab|collabs|business|prices?"
    r"|rates|bookings?)\b",
    r"\bcheck out my (?:new |latest )?(?:video|channel|blog|page|website|site|mixtape|song|track|music|album|ep"
    r"|shop|store|profile|youtube|soundcloud|instagram|art|stream|podcast|book|post|music video|column|snap)\b",
    r"\bsubscribe to my\b|\b(?:follow|add) me on (?:instagram|ig|snapchat|youtube|soundcloud|twitch|tumblr"
    r"|facebook)\b",
    r"\b(?:free|get more|buy|gain|more) (?:twitter |instagram )?followers\b"
    r"|\b(?<!\bme )(?<!\bsome )(?<!\bsweet )(?<!\ba )(?<!\bthe )(?<!\bmy )(?:promo|discount|coupon"
    r"|voucher) code\b|\buse (?:my )?code\b",
    r"\b(?<!\bi )(?<!\bwe )(?:shop|order|buy) now\b|\bfree shipping\b|\blimited time (?:offer|only)\b"
    r"|\bup to \d{2}% off\b",
    r"\b(?:make|earn) (?:\$\d+|money|cash|extra cash|extra money) (?:online|from home|fast|daily|a day|per day"
    r"|today)\b|\bwork from home (?:and|jobs?|opportunity)\b",
)
_HASHTAG = re.compile(r"(?<![\w#&])#\w+")
_LINK = re.compile(r"https?://\S+", re.IGNORECASE)
# Hashtag-stuffed posts *with a link* are feeds and promotions; without one they are mostly people
# shouting (political threads tag six or more), so the count alone does not vote.
_HASHTAG_STUFFING = 5
_LINK_STUFFING = 3
_PERSONAL = re.compile(r"\b(?:i|i'm|im|i've|i'll|my|me|mine|we|we're|our|us|lol|haha)\b")


def _spam(post: _Post) -> bool:
    links = len(_LINK.findall(post.raw))
    if links >= _LINK_STUFFING or _SPAM.search(post.lower):
        return True
    # people tag their own photos heavily too ("my new car #love #nofilter ..."); feeds never say "I"
    stuffed = links and len(_HASHTAG.findall(post.raw)) >= _HASHTAG_STUFFING
    return bool(stuffed) and not _PERSONAL.search(_HASHTAG.sub(" ", post.lower))


# -- the labelling functions ------------------------------------------------------------------
_VOTERS: dict[str, Callable[[_Post], bool]] = {
    "customer_care": _customer_care,
    "sales_lead": _sales_lead,
    "product_feedback": _product_feedback,
    "praise": _praise,
    "press": _press,
    "investor": _investor,
    "employer": _employer,
    "risk": _risk,
    "spam": _spam,
}
if tuple(_VOTERS) != PURPOSES:  # a purpose added to models.tasks needs its rule here
    raise ImportError(f"purpose rules {tuple(_VOTERS)} do not match models.tasks.PURPOSES {PURPOSES}")


def customer_care_rule(text: str) -> bool:
    """A complaint or support request: "my order hasn't arrived", "@brand how do I reset ...?"."""
    return _customer_care(_read(text))


def sales_lead_rule(text: str) -> bool:
    """Purchase intent or a price / availability question: "thinking of buying", "is it in stock?"."""
    return _sales_lead(_read(text))


def product_feedback_rule(text: str) -> bool:
    """A suggestion, feature request or bug report: "please add ...", "crashes when ..."."""
    return _product_feedback(_read(text))


def praise_rule(text: str) -> bool:
    """A review, recommendation or advocacy: "love my new ...", "highly recommend", "thank you @x for"."""
    return _praise(_read(text))


def press_rule(text: str) -> bool:
    """A journalist or blogger request: "I'm writing a piece on ...", "press contact?", "media enquiry"."""
    return _press(_read(text))


def investor_rule(text: str) -> bool:
    """Markets talk: cashtags, earnings, guidance, analyst ratings, share price, dividends."""
    return _investor(_read(text))


def employer_rule(text: str) -> bool:
    """Jobs, hiring, staff and workplace: "we're hiring", "my manager", "layoffs", "on strike"."""
    return _employer(_read(text))


def risk_rule(text: str) -> bool:
    """Safety, outage, recall, legal, boycott, fraud, security, counterfeit or misinformation."""
    return _risk(_read(text))


def spam_rule(text: str) -> bool:
    """A promotion, giveaway, follow-bait or bot post: "follow back", "click here", "#giveaway"."""
    return _spam(_read(text))


RULES: dict[str, Callable[[str], bool]] = {
    "customer_care": customer_care_rule,
    "sales_lead": sales_lead_rule,
    "product_feedback": product_feedback_rule,
    "praise": praise_rule,
    "press": press_rule,
    "investor": investor_rule,
    "employer": employer_rule,
    "risk": risk_rule,
    "spam": spam_rule,
}


def purpose_votes(text: str) -> frozenset[str]:
    """The purposes whose labelling function fires on ``text`` (empty: every rule abstains)."""
    post = _read(text)
    return frozenset(purpose for purpose, votes in _VOTERS.items() if votes(post))


def label_matrix(texts: list[str]) -> list[frozenset[str]]:
    """``purpose_votes`` for each text, in order: the weak labels the purpose head trains on."""
    return [purpose_votes(text) for text in texts]
