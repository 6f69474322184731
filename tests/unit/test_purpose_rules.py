"""The purpose labelling functions: realistic posts each rule must vote for, and the look-alikes it must not."""

import pytest

from models.purpose_rules import (
    RULES,
    customer_care_rule,
    employer_rule,
    investor_rule,
    label_matrix,
    normalise_for_rules,
    praise_rule,
    press_rule,
    product_feedback_rule,
    purpose_votes,
    risk_rule,
    sales_lead_rule,
    spam_rule,
)
from models.tasks import PURPOSES


def test_one_rule_per_purpose_in_task_order():
    assert tuple(RULES) == PURPOSES


@pytest.mark.parametrize(
    "text",
    [
        "@AmazonHelp my order hasn't arrived and it's been 2 weeks",
        "@Netflix how do I reset my password?",
        "@united lost my bag on UA938, still waiting for a call back",
        "@USAirways been on hold for 2 hours, flight was cancelled. Please help!",
        "@SouthwestAir worst customer service ever, I want a refund",
        "Still no response from @ThreeUK about my bill #fail",
    ],
)
def test_customer_care_votes_for_complaints_and_support_questions(text):
    assert customer_care_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "@zaynmalik can you please help me trend #happybirthday",
        "calm down, it's only a game",
        "@jodymacman why didn't the Colts footballs drop at the same time? #DeflateGate",
        "Still waiting for summer in Brussels, 14C in July",
    ],
)
def test_customer_care_ignores_fans_and_small_talk(text):
    assert not customer_care_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "Thinking about getting the Galaxy Note 4, any advice?",
        "@united how much does it cost to check an extra bag?",
        "@IKEAUK will the Lappland TV unit be back in stock soon?",
        "I'm going to buy a PS4 on Friday!",
        "Torn between @SamsungMobileUS and @apple for my next phone",
        "@ASOS do you ship to Ireland?",
    ],
)
def test_sales_lead_votes_for_purchase_intent_and_price_questions(text):
    assert sales_lead_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "Google is going to buy Uber and roll out self-driving taxis",  # an acquisition, not a lead
        "I'm not going to buy the new album after all",
        "Belichick knows the rules, I'm not buying it #DeflateGate",  # "buying it" = believing it
        "Anybody want 2 tickets to Jack White tomorrow? Can't make it",  # a seller, not a buyer
        "Anyone going to the cinema Friday? I'll buy the popcorn",
        "I may consider buying a ticket for Saturday #notreally",
        "$AAPL stock price up 3% today",
    ],
)
def test_sales_lead_ignores_acquisitions_negations_and_sellers(text):
    assert not sales_lead_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "@SouthwestAir please add PayPal as a payment option!",
        "@apple the new update is so buggy, Safari crashes every time I open a tab",
        "My app keeps crashing when I try to check in @JetBlue",
        "@Adobe it would be awesome if Bridge had a dark mode option",
        "Dear @Arbys please bring back the loaded potato cakes",
        "Feature request for @waze: report traffic from self-driving cars",
    ],
)
def test_product_feedback_votes_for_suggestions_and_bug_reports(text):
    assert product_feedback_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "I caught a stomach bug this weekend",
        "@united please fix my booking, I was moved to the wrong flight",  # a care request
        "Please add me to the group chat",
        "They need to add more gun control laws",
        "wish you were here",
    ],
)
def test_product_feedback_ignores_look_alikes(text):
    assert not product_feedback_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "Love my new iPhone 6 from @TMobile!",
        "Highly recommend @CasaLarreaInn if you're going to Coachella",
        "Thank you @AmericanAir for the great customer service today",
        "Gave 5 stars to Tracee at @neimanmarcus for the amazing service",
        "@JetBlue you guys rock!",
    ],
)
def test_praise_votes_for_reviews_recommendations_and_thanks(text):
    assert praise_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "Thanks @united for losing my bag. Great service.",  # sarcasm
        "@USAirways less than stellar customer service again",
        "The USO gave GREAT customer service today, unlike you @USAirways",
        "May the best team win!",
        "This new mixtape is on fire",  # praise in spirit, but no rule phrase: abstain
    ],
)
def test_praise_vetoes_sarcasm_and_abstains_without_a_phrase(text):
    assert not praise_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "@FC_Help Hi - I'm writing a piece for MSN and wondered who I could talk to in the PR dept?",
        "I'm a journalist with the Guardian looking for passengers affected by the strike",
        "Media enquiry: who handles press for @Tesla in the UK? #journorequest",
    ],
)
def test_press_votes_for_journalist_requests(text):
    assert press_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "He is a paid political hack disguised as a journalist",
        "Shout out to the @JetBlue social media team!",
        "George Osborne writing an article for the Guardian, grinning",
    ],
)
def test_press_ignores_talk_about_journalists(text):
    assert not press_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "$AAPL shares fall despite price target increases from BMO",
        "Barclays raises Apple price target to $140",
        "Netflix beats EPS views, stock up 8% after hours",
        "UBS downgrades Twitter to sell",
        "Apple quarterly results beat estimates; dividend raised",
    ],
)
def test_investor_votes_for_markets_talk(text):
    assert investor_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "Gas by my house hit $3.39!!!",
        "Is the new iPhone in stock at the Regent St store?",
        "Stock up on Claritin before allergy season",
        "Watching the Halloween eps of PLL tonight",
        "Paid extra in $US because the rate was better",
    ],
)
def test_investor_ignores_prices_stock_availability_and_episodes(text):
    assert not investor_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "We're hiring! Barista job openings in Leeds, apply now",
        "Got the job at Claytons! Start Monday",
        "my manager scheduled me for a double shift again",
        "HP layoffs: 30,000 employees laid off",
        "Teachers go on strike over pay tomorrow",
    ],
)
def test_employer_votes_for_jobs_staff_and_workplace(text):
    assert employer_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "Apply a 20% discount code at checkout",
        "Smith strikes out three in the 9th",
        "#Jobs said Apple took pains to protect record contracts",  # Steve Jobs, not jobs
        "European Union leaders meet in Brussels",
        "It's my job to keep the worship leader's ego inflated",
    ],
)
def test_employer_ignores_discounts_sport_and_idioms(text):
    assert not employer_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "Toyota issues a recall of 1.2 million cars over airbags #recall",
        "Gmail is down again, can't send anything",
        "Kesha sues Dr Luke; lawsuit filed in LA",
        "Boycott Dunkin Donuts!",
        "Beware of counterfeit Beats headphones on eBay",
        "My Galaxy Note 7 battery caught fire on the train",
        "Got food poisoning from the chicken at @Chipotle",
        "Data breach at Target exposes 40 million cards",
    ],
)
def test_risk_votes_for_safety_outage_legal_and_fraud(text):
    assert risk_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "calm down, the price is down to $5",
        "Huge fire sale this weekend, everything 50% off",
        "This new album is on fire",
        "If I recall correctly, the show starts at 8",
        "I have an issue with my account; Aunt Sue will pursue it",  # "sue" inside words and names
        "She gave me a fake smile",
        "Ronaldo's injury was more serious than they said",
    ],
)
def test_risk_ignores_look_alikes(text):
    assert not risk_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "#TeamFollowBack follow back and RT for a chance to win!",
        "Click here to win a free iPad http://t.co/abc",
        "DM for promo, check out my new mixtape",
        "iPhone 6 rumours #Apple #iPhone6 #tech #news #gadgets http://t.co/x1",
    ],
)
def test_spam_votes_for_promotions_and_bots(text):
    assert spam_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "My new car!! #love #cars #happy #blessed #nofilter http://t.co/x1",  # a person, tagging
        "#MAGA #Trump #KAG #Vote #Border #Wall we need the wall",  # stuffed, but no link
        "@SouthwestAir any chance of a promo code to visit my family?",
        "@JetBlue how do I claim points? I forgot to put in the promo code",
        "@united follow back and I'll give you the details",  # a customer asking to DM, not follow-bait
    ],
)
def test_spam_ignores_people_who_tag_heavily(text):
    assert not spam_rule(text)


def test_normalisation_decodes_entities_and_drops_links_and_handle_names():
    text = normalise_for_rules("@counterfeitrock Q&amp;A at 8 \u2019til late http://bit.ly/scam-alert")
    assert text == "@user Q&A at 8 'til late  "
    assert not risk_rule("@counterfeitrock see you in Milan! http://t.co/scam")


def test_hashtags_and_emoji_do_not_hide_a_phrase():
    assert risk_rule("Peanut butter #recall expanded 🥜😱")
    assert sales_lead_rule("😍 thinking of buying the #AppleWatch")


def test_purpose_votes_is_multi_label():
    votes = purpose_votes("@AmericanAir lost my bag and your app keeps crashing when I try to file a claim")
    assert votes == frozenset({"customer_care", "product_feedback"})
    assert purpose_votes("Data breach at Target, $TGT shares down 5% premarket") == frozenset({"risk", "investor"})


def test_purpose_votes_abstains_on_chatter():
    assert purpose_votes("lovely sunny day in the park with the dog") == frozenset()


def test_label_matrix_keeps_order_and_length():
    texts = ["We're hiring baristas!", "nothing to see here", "@Netflix how do I reset my password?"]
    assert label_matrix(texts) == [frozenset({"employer"}), frozenset(), frozenset({"customer_care"})]
    assert label_matrix([]) == []
