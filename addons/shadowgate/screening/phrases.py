"""Phrase detectors: instruction override, jailbreak personas, system-prompt extraction, indirect
injection aimed at an assistant reading a document, and fake chat-template / role tokens.

Every pattern is written against folded text (normalize.fold: NFKC, casefolded, invisibles
dropped, look-alikes mapped) and is folded the same way when compiled. Gaps between words are
bounded ({0,n}) so no pattern can backtrack over more than a sentence.
"""

from __future__ import annotations

from .gates import GatedPattern
from .gates import GateSet
from .normalize import fold_pattern

# A short run of words between two key words: at most N words, never across a paragraph.
_GAP = r"(?:[^\n.!?;]{0,40}?)"
_W = r"(?:\s+\S+){0,%d}?\s+"

# --- instruction override, per language -------------------------------------------------------
# Each entry: a verb of dismissal, a bounded gap, and what is dismissed (instructions, rules, all
# that came before). Languages whose verb follows the object (ja, ko, hi, tr) list that order.
OVERRIDE = {
    "en": [
        r"\b(?:ignore|disregard|forget|override|overwrite|bypass|skip|neglect|abandon|discard|drop|"
        r"throw out|set aside|do not follow|don'?t follow|stop following|no longer follow)\b"
        r"(?:\s+\S+){0,5}?\s+(?:previous|prior|above|earlier|preceding|foregoing|initial|original|former|"
        r"old|system|all|any|every|your|these|those|developer|safety|pre-?set|given)\b"
        r"(?:\s+\S+){0,3}?\s*(?:instructions?|prompts?|directions?|directives?|rules|guidelines?|commands?|"
        r"orders|constraints|restrictions|tasks?|programming|training|context|messages?|texts?|"
        r"information|guidance|policies|polic(?:y|ies)|settings|content|conversation|inputs?|prompting)\b",
        r"\b(?:ignore|disregard|forget)\s+(?:about\s+)?(?:everything|anything|all(?: of)? that|what)\b"
        r"(?:\s+\S+){0,4}?\s+(?:above|before|previously|prior|earlier|said|told|i said|you were told)\b",
        r"\b(?:ignore|disregard|forget)\s+(?:all|everything)\s*(?:[.,!:;]|$)",
        r"\bnew\s+(?:instructions?|task|rules|directive|orders?)\s*:",
        r"\b(?:now\s+)?focus\s+on\s+your\s+new\s+task\b",
        r"\byour\s+new\s+(?:task|instructions?|role|objective|goal|purpose)\s+(?:is|are|will be)\b",
        r"\b(?:previous|prior|above|earlier|original|all)\s+(?:instructions?|prompts?|rules)\s+"
        r"(?:are|is|were|was)\s+(?:false|void|null|cancell?ed|revoked|obsolete|invalid|wrong|a test|"
        r"no longer valid|overridden|deprecated)",
        r"\b(?:instructions?|rules)\s+(?:above|before this)\s+(?:are|is)\s+(?:false|void|cancell?ed|revoked|invalid)",
        r"\bstop\s+everything\b|\b(?:safe|safety)\s+mode\s+(?:is\s+)?(?:off|disabled|deactivated)\b",
        r"\b(?:begin|start)\s+(?:of\s+)?(?:new\s+instructions?|reprogramming)\b|\bend\s+(?:of\s+)?(?:out of date|old|"
        r"previous|original|outdated)\s+instructions\b",
        r"\bstart\s+(?:over|fresh|anew)\s+with\s+(?:new|these|the following)\s+(?:instructions?|rules)\b",
        # words run together ("allprevious instructions are false")
        r"\ball\s*(?:previous|prior)\s+(?:instructions?|prompts?|rules)\s+(?:are|were)\s+(?:false|void|invalid|wrong)",
        # a new role for the assistant itself, not "you are now a registered user"
        r"\byou\s+are\s+now\s+an?\s+(?:\S+\s+){0,3}?(?:bot|chatbot|assistant|ai|persona|character|language model)\b"
        r"(?:\s+\S+){0,3}?\s*(?:[.!:,]|$)",
    ],
    "de": [
        r"\b(?:ignorier\w*|vergiss|vergessen sie|vergesst|missachte\w*|übergehe\w*|verwirf|befolge nicht|"
        r"beachte nicht|beachten sie nicht)\b"
        + _W
        % 5
        + r"(?:vorherige\w*|vorangegangene\w*|bisherige\w*|obige\w*|alle\w*|deine\w*|ihre\w*|früher\w*|"
        r"ursprüngliche\w*|vorigen?)?\s*(?:\S+\s+){0,2}?(?:anweisungen|anweisung|instruktionen|befehle|"
        r"regeln|vorgaben|aufgaben|aufträge|richtlinien|prompts?)\b",
        r"\b(?:vergiss|vergessen sie|vergesst|ignorier\w*)\s+(?:\S+\s+){0,2}?(?:alles|allem)\b(?:\s+\S+){0,3}?\s*"
        r"(?:davor|zuvor|vorher|bisher|oben|bisherige|was|[.,!:]|$)",
        r"\bneue\w*\s+(?:anweisungen|aufgabe|befehle|regeln)\s*:",
        r"\bkonzentriere dich (?:jetzt |nun )?auf deine neue aufgabe\b",
    ],
    "fr": [
        r"\b(?:ignore[rz]?|oublie[rz]?|oubliez|néglige[rz]?|ne tiens pas compte|ne tenez pas compte|"
        r"fais abstraction|faites abstraction|ne suis pas|ne suivez pas)\b"
        + _W
        % 5
        + r"(?:\S+\s+){0,2}?(?:instructions?|consignes?|règles|directives|ordres|indications|"
        r"commandes|prompts?|tâches)\b",
        r"\b(?:ignore[rz]?|oublie[rz]?|oubliez)\s+tout\b(?:\s+\S+){0,3}?\s*(?:ce qui précède|ce qui a été dit|"
        r"avant|précédent|ci-dessus|[.,!:]|$)",
        r"\bnouvelles?\s+(?:instructions?|consignes?|tâche|règles)\s*:",
    ],
    "es": [
        r"\b(?:ignora[rd]?|ignore|ignoren|olvida[rd]?|olvide|olviden|descarta[rd]?|no sigas|no sigan|"
        r"omite|omitir|haz caso omiso)\b"
        + _W
        % 5
        + r"(?:\S+\s+){0,2}?(?:instrucciones|instrucción|indicaciones|reglas|órdenes|directrices|"
        r"directivas|normas|comandos|prompts?|tareas)\b",
        r"\b(?:ignora|olvida|olvide|ignore)\s+todo\b(?:\s+\S+){0,3}?\s*(?:lo anterior|lo que|antes|"
        r"anteriormente|[.,!:]|$)",
        r"\bnuevas?\s+(?:instrucciones|tarea|reglas|órdenes)\s*:",
    ],
    "it": [
        r"\b(?:ignora(?:re)?|ignori|ignorate|dimentica(?:re)?|dimentichi|dimenticate|trascura|"
        r"non seguire|non segua|non seguite)\b"
        + _W
        % 5
        + r"(?:\S+\s+){0,2}?(?:istruzioni|istruzione|regole|indicazioni|direttive|ordini|comandi|"
        r"prompt|compiti)\b",
        r"\b(?:ignora|dimentica|dimentichi)\s+tutto\b(?:\s+\S+){0,3}?\s*(?:quello|ciò|prima|sopra|[.,!:]|$)",
        r"\bnuove\s+(?:istruzioni|regole)\s*:|\bnuovo\s+compito\s*:",
    ],
    "pt": [
        r"\b(?:ignor[ae]r?|ignorem|esque[cç]a|esqueçam|esquecer?|esquece|desconsider[ae]r?|descart[ae]r?|"
        r"não siga|nao siga|não sigam)\b"
        + _W
        % 5
        + r"(?:\S+\s+){0,2}?(?:instruções|instrucoes|instrução|regras|orientações|orientacoes|diretrizes|"
        r"ordens|comandos|prompts?|tarefas)\b",
        r"\b(?:ignore|esqueça|esqueca|esquece)\s+tudo\b(?:\s+\S+){0,3}?\s*(?:o que|antes|acima|anterior|[.,!:]|$)",
        r"\bnovas?\s+(?:instruções|instrucoes|tarefa|regras)\s*:",
    ],
    "nl": [
        r"\b(?:negeer|negeren|vergeet|vergeten|volg niet|niet volgen|sla over)\b"
        + _W % 5
        + r"(?:\S+\s+){0,2}?(?:instructies|instructie|aanwijzingen|regels|opdrachten|opdracht|richtlijnen|"
        r"commando's|prompts?|taken)\b",
        r"\b(?:negeer|vergeet)\s+alles\b(?:\s+\S+){0,3}?\s*(?:wat|hierboven|eerder|daarvoor|voorheen|[.,!:]|$)",
        r"\bnieuwe\s+(?:instructies|opdracht|taak|regels)\s*:",
    ],
    "pl": [
        r"(?<!\w)(?:zignoruj\w*|ignoruj\w*|zapomnij\w*|pomiń|pomin|nie stosuj się do|nie wykonuj|"
        r"odrzuć|lekceważ)(?!\w)"
        + _W
        % 5
        + r"(?:\S+\s+){0,2}?(?:instrukcj\w*|polece\w*|zasad\w*|reguł\w*|wytyczn\w*|rozkaz\w*|komend\w*|"
        r"prompt\w*|zada\w*)",
        r"(?<!\w)(?:zignoruj|zapomnij)\s+(?:o\s+)?(?:wszystk\w*)(?:\s+\S+){0,3}?\s*(?:wcześniej|powyżej|"
        r"co|poprzedni\w*|[.,!:]|$)",
        r"(?<!\w)now\w*\s+(?:instrukcje|polecenia|zadanie|zasady)\s*:",
    ],
    "ru": [
        r"(?<!\w)(?:игнорируй\w*|проигнорируй\w*|игнорировать|забудь\w*|забыть|не обращай\w* внимания на|"
        r"не следуй\w*|не выполняй\w*|отбрось|пренебреги)(?!\w)"
        + _W
        % 5
        + r"(?:\S+\s+){0,2}?(?:инструкци\w*|указани\w*|правил\w*|команд\w*|приказ\w*|директив\w*|"
        r"установк\w*|промпт\w*|задани\w*|ограничени\w*)",
        r"(?<!\w)(?:забудь\w*|игнорируй\w*|проигнорируй\w*)\s+(?:про\s+|о\s+)?(?:вс[её]|всем)(?!\w)"
        r"(?:\s+\S+){0,3}?\s*(?:что|выше|раньше|ранее|до этого|предыдущ\w*|[.,!:]|$)",
        r"(?<!\w)нов\w*\s+(?:инструкци\w*|задани\w*|задача|правила)\s*:",
    ],
    "zh": [
        r"(?:忽略|忽视|无视|忘记|忘掉|不要理会|不要遵守|不要遵循|停止遵循|抛开|丢弃|忽略掉|忽視|無視|忘記|不要理會|不要遵循)"
        r".{0,12}?(?:指令|指示|说明|說明|规则|規則|提示词|提示詞|提示|要求|设定|設定|约束|約束|限制|命令|任务|任務)",
        r"(?:忘记|忘掉|忽略|忘記)(?:之前|以前|上面|前面|先前)?(?:的)?(?:所有|一切|全部)(?:内容|內容|东西|東西)?",
        r"新(?:的)?(?:指令|任务|任務|指示)\s*[:：]",
    ],
    "ja": [
        r"(?:指示|命令|ルール|規則|プロンプト|設定|制約|指令|タスク|内容)(?:を|は)?(?:すべて|全て|全部)?\s*(?:無視|忘れ)",
        r"(?:無視|忘れ)(?:して|しろ|せよ|ろ|てください).{0,12}?(?:指示|命令|ルール|プロンプト)",
        r"(?:これまで|以前|前|上記|今まで)の.{0,10}?(?:無視|忘れ)",
        r"新しい(?:指示|命令|タスク)\s*[:：]",
    ],
    "ko": [
        r"(?:지시|지침|명령|규칙|프롬프트|설정|제약|지시사항|안내|내용)\S{0,3}\s*(?:\S+\s*){0,2}?(?:무시|잊어|잊고|잊으)",
        r"(?:이전|위의|앞의|기존|모든)\s*.{0,12}?(?:무시|잊어|잊고)",
        r"새로운\s*(?:지시|명령|작업|임무)\s*[:：]",
    ],
    "ar": [
        r"(?:تجاهل|تجاهلي|تجاهلوا|انس|انسى|انسي|إنس|لا تتبع|لا تلتزم|اهمل|أهمل)\s+.{0,30}?"
        r"(?:التعليمات|تعليمات|الأوامر|أوامر|القواعد|قواعد|الإرشادات|إرشادات|التوجيهات|المطالبة|المهام)",
        r"(?:تجاهل|انس|إنس)\s+(?:كل|جميع)\s+(?:ما\s+)?(?:سبق|قبل|ذلك)",
        r"تعليمات\s+جديدة\s*[:：]",
    ],
    "hi": [
        r"(?:निर्देश|निर्देशों|नियम|नियमों|आदेश|आदेशों|अनुदेश|हिदायत|प्रॉम्प्ट).{0,30}?"
        r"(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल जा|भूल जाओ|भूल जाइए|उपेक्षा|मत मानो|न मानें)",
        r"(?:पिछल|पहले|ऊपर).{0,20}?(?:सब|सभी|सारी|सारे)?.{0,10}?(?:अनदेखा|भूल जा|नज़रअंदाज़|नजरअंदाज)",
        r"नए निर्देश\s*[:：]",
    ],
    "tr": [
        r"(?:talimat\w*|yönerge\w*|kural\w*|komut\w*|emir\w*|istem\w*|görev\w*|direktif\w*)\s+"
        r"(?:\S+\s+){0,2}?(?:yok say|görmezden gel|unut|dikkate alma|umursama|boşver|önemseme)",
        r"(?<!\w)(?:önceki|yukarıdaki|tüm|bütün)\s+(?:\S+\s+){0,2}?(?:yok say|görmezden gel|unut)",
        r"(?<!\w)yeni\s+(?:talimat\w*|görev|kurallar)\s*:",
    ],
}

JAILBREAK = [
    r"\bdo anything now\b",
    r"\b(?:dan|stan|dude|apophis|evil|unrestricted|jailbr(?:oken|eak)|unfiltered|uncensored|chaos|anarchy)\s+mode\b",
    # "developer mode" alone is a phone setting; the jailbreak has it enabled and answering.
    r"\b(?:developer|dev|god)\s+mode\s+(?:is\s+)?(?:enabled|activated|output|response)\b",
    r"\bmode\s*(?::|=)?\s*(?:dan|jailbreak|unrestricted|uncensored|developer)\b",
    r"\bjailbr(?:eak|oken|eaking)\b(?:\s+\S+){0,3}?\s+(?:prompt|version|mode|response|persona|ai|chatgpt|gpt)\b",
    r"\[(?:🔓|🔒)?\s*(?:jailbreak|dan|classic|developer mode|unlocked|unfiltered)\s*\]",
    r"\b(?:pretend|imagine|act as if|behave as if|assume|suppose)\b(?:\s+\S+){0,3}?\s+you\s+(?:have|had|are|were)\s+"
    r"(?:no|free from|freed from|not bound by|without|unbound by|released from|exempt from)\b",
    r"\b(?:no|without|free of|free from|freed from|beyond|not bound by|not restricted by|not limited by|"
    r"unbound by|break free of|broken free of|released from|exempt from|doesn'?t (?:have|follow|care about)|"
    r"does not (?:have|follow|care about)|don'?t (?:have|follow|care about)|do not (?:have|follow|care about)|"
    r"bypass(?:es|ing)?|ignor(?:e|es|ing)|disregard(?:s|ing)?)\s+(?:any\s+|all\s+|the\s+|of\s+|your\s+|their\s+|its\s+)?"
    r"(?:typical\s+|usual\s+|normal\s+|standard\s+)?(?:confines|ethical|moral|ethics|morals|morality|"
    r"content (?:policy|policies|filters?|restrictions|guidelines)|safety (?:guidelines|filters|rules|protocols|measures)|"
    r"openai|anthropic|censorship|filters|filtering)\b",
    r"\b(?:unfiltered|uncensored|unrestricted|amoral|nonmoral|non-moral|unethical|immoral|uninhibited|limitless)\b,?"
    r"(?:\s+\S+){0,3}?\s+(?:ai|assistant|chatbot|model|language model|version|persona|character|bot|entity|llm)\b",
    r"\b(?:not bound by|free of|free from|freed from|released from|exempt from|unbound by|without)\s+(?:all|any)\s+"
    r"(?:\S+\s+){0,2}?(?:restrictions|limitations|rules|guidelines|limits|boundaries|constraints|filters)\b",
    r"\byou\s+are\s+no\s+longer\s+(?:chatgpt|gpt|claude|gemini|an?\s+(?:ai|language model|assistant|chatbot)|bound|"
    r"restricted|limited)\b",
    r"\b(?:doesn'?t|does not|won'?t|will not|never|can'?t|cannot)\s+refuse\s+(?:any|a|to answer)\b",
    r"\b(?:never|not|don'?t|do not)\s+(?:say|mention|remind|state|admit)\b(?:\s+\S+){0,3}?\s+(?:you(?:'re| are)|that you are|"
    r"being|it is)\s+an?\s+(?:ai|language model|chatbot|large language model|ai language model)\b",
    r"\b(?:without|no)\s+(?:any\s+)?(?:restrictions|limitations|limits|filters|censorship|boundaries|"
    r"guardrails|safeguards|rules)\s+(?:or|and|whatsoever|at all|of any kind|imposed)\b",
    r"\b(?:will|must|shall|can|should)\s+(?:never|not)\s+refuse\b|\bnever\s+refuses?\b|\bcannot refuse\b|"
    r"\bcan'?t refuse\b|\bwithout refusing\b|\bnot allowed to refuse\b",
    r"\bstay(?:s|ing)?\s+in\s+character\b|\bbreak(?:ing)?\s+character\b",
    r"\b(?:machiavellian|anti-?gpt|betterdan|chatgpt with developer mode|basedgpt|evil-?bot|evil confidant)\b",
    r"\b(?:two|2)\s+(?:different\s+|separate\s+)?(?:responses|answers|paragraphs)\b(?:\s+\S+){0,12}?\s+"
    r"(?:normal|classic|standard|filtered|censored)\b(?:\s+\S+){0,8}?\s+(?:jailbreak|dan|developer|unfiltered|"
    r"uncensored|evil|opposite)\b",
    r"\b(?:tokens?)\b(?:\s+\S+){0,6}?\s+(?:deducted|lose|lost|run out)\b",
    r"\bbroken\s+free\s+of\b|\bfreed\s+from\s+the\s+(?:typical\s+)?confines\b",
    # "you have no restrictions", "a chatbot without restrictions" (not "no restrictions on length")
    r"\byou\s+(?:now\s+)?(?:have|had)\s+(?:no|zero)\s+(?:restrictions|limitations|filters|censorship|guidelines|"
    r"boundaries|morals|ethics)\b(?!\s+(?:on|for|regarding|about|as to)\b)",
    r"\b(?:ai|chatbot|bot|assistant|model|character)\s+(?:without|with no)\s+(?:any\s+)?(?:restrictions|limitations|"
    r"filters|censorship|morals|ethics|boundaries)\b(?!\s+(?:on|for|regarding|about)\b)",
    r"\b(?:does not|doesn't|do not|don't|won't|will not|never)\s+(?:adhere to|abide by|comply with|conform to|obey)\s+"
    r"(?:the\s+|any\s+)?(?:\S+\s+)?(?:policies|rules|guidelines|content policy)\s+(?:of|set by|from)\s+(?:openai|anthropic)\b",
    # the "moralizing rant" template and its cue
    r"\bmoraliz\w*\s+rant\b|\blet'?s\s+(?:break|ignore|bypass)\s+(?:the\s+)?(?:\S+\s+)?rules\s*[:!]",
    # the "grandma" template: a dead relative who used to read out what the model must not
    r"\b(?:pretend|act|roleplay|role-play|play)\b(?:\s+\S+){0,2}?\s+(?:as\s+|to be\s+|you are\s+|you're\s+)?my\s+"
    r"(?:dead\s+|late\s+|deceased\s+|beloved\s+)?(?:grand(?:ma|mother|pa|father)|granny|nana)\b",
    r"\b(?:openai|anthropic)(?:'s)?\s+(?:content\s+)?(?:policy|policies|rules|guidelines)\b(?:\s+\S+){0,6}?\s+"
    r"(?:no longer|don'?t|do not|does not|doesn'?t|not)\s+(?:apply|matter|exist|bind)",
]

EXTRACTION = [
    r"\b(?:reveal|show|print|display|output|repeat|recite|leak|dump|disclose|expose|list|relay|respond with|"
    r"reproduce|type out|write down)\b(?:\s+\S+){0,3}?\s+(?:your|the)\s+(?:\S+\s+){0,3}?(?:instructions|prompts?|"
    r"directives|guidelines|parameters|configuration|rules)\b(?:\s+\S+){0,3}?\s*(?:verbatim|word for word|"
    r"you (?:have been|were|'ve been) given|given to you|as they are|exactly|in full|above)",
    r"\b(?:list|repeat|print|reveal|output|dump)\s+(?:all\s+(?:of\s+)?)?your\s+(?:initials?|original|system|secret|"
    r"hidden)\s+(?:instructions|prompt|rules)\b",
    r"\b(?:reveal|show|print|display|output|repeat|recite|leak|dump|share|disclose|expose|tell me|give me|"
    r"write out|spell out|list|paste|echo|what (?:is|are|was|were))\b(?:\s+\S+){0,3}?\s+(?:your|the|all|its)\s+"
    r"(?:\S+\s+){0,2}?(?:system|initial|original|hidden|secret|internal|pre-?|first|full|entire|exact|above|"
    r"previous|confidential|underlying|developer)\s*(?:-\s*)?(?:prompts?|instructions?|messages?|directives?|"
    r"guidelines|configuration|rules)\b",
    r"\b(?:reveal|show|print|display|output|dump|leak|disclose)\b(?:\s+\S+){0,3}?\s+your\s+(?:prompts?|"
    r"prompt texts?|instructions|rules|guidelines|programming)\b",
    r"\b(?:repeat|print|output|copy|reproduce|write)\b(?:\s+\S+){0,3}?\s+(?:words|text|everything|all|"
    r"content|instructions)\s+(?:above|before this|preceding|prior to)\b",
    r"\bwhat\s+(?:was|is)\s+(?:written|said|stated)\s+(?:above|before|at the (?:beginning|start|top))\b",
    r"\b(?:respond with|reply with|output|print|list|repeat|reveal|tell me|show me|give me)\s+(?:all|every|each)\s+"
    r"(?:of\s+)?(?:the\s+|your\s+)?(?:instructions?|rules|directives|guidelines)\s+(?:you\s+(?:have\s+been|were|'ve been)"
    r"\s+given|given to you|you (?:have|were) (?:told|received))",
    r"\b(?:beginning|start)\s+of\s+(?:the|this|your)\s+(?:conversation|prompt|context|chat)\b(?:\s+\S+){0,4}?"
    r"\s+(?:verbatim|word for word|exactly)\b|\bverbatim\b(?:\s+\S+){0,6}?\s+(?:system|initial|above)\b",
    r"\bwhat\s+(?:are|were)\s+your\s+(?:initial|original|system|secret|hidden|exact)\s+(?:instructions|prompt|rules)\b",
    r"\b(?:your|the)\s+(?:system|initial|hidden|secret)\s+prompt\b(?:\s+\S+){0,4}?\s+(?:verbatim|word for word|"
    r"in full|in a code block|exactly)\b",
    r"\b(?:zeig\w*|gib|nenne|wiederhole)\b(?:\s+\S+){0,2}?\s+(?:deine\w*|ihre\w*|den|die)\s+(?:system\w*|"
    r"ursprüngliche\w*|geheime\w*|versteckte\w*)?\s*(?:prompts?|anweisungen|instruktionen)\b",
    r"\b(?:montre|affiche|révèle|répète|donne)[sz]?(?:-moi)?\b(?:\s+\S+){0,2}?\s+(?:ton|tes|votre|vos|le|les)\s+"
    r"(?:prompt|instructions|consignes)(?:\s+(?:système|initiales?|secrètes?))?\b",
    r"\b(?:muestra|muéstrame|revela|repite|dime)\b(?:\s+\S+){0,2}?\s+(?:tu|tus|el|las)\s+(?:prompt|"
    r"instrucciones)(?:\s+(?:del sistema|iniciales|secretas))?\b",
    r"(?:покажи|выведи|раскрой|повтори|напиши)(?:\s+\S+){0,2}?\s+(?:свой|свои|твой|твои|системн\w*)\s+"
    r"(?:промпт\w*|инструкци\w*|подсказк\w*)",
    r"(?:系统提示|系統提示|系统指令|初始指令|system prompt).{0,8}?(?:是什么|告诉我|输出|显示|打印|重复)|"
    r"(?:输出|显示|打印|重复|告诉我|泄露).{0,8}?(?:系统提示|系統提示|系统指令|初始指令|你的提示词)",
]

INDIRECT = [
    r"\bignore\s+(?:the\s+)?user(?:'s)?\b(?:\s+(?:request|question|instructions?|query|input|prompt))?",
    r"\b(?:do not|don'?t|never)\s+(?:tell|inform|mention\s+(?:this\s+)?to|reveal\s+(?:this\s+)?to|let|show|notify|alert|ask)\s+"
    r"(?:the\s+)?user\b",
    r"\bwithout\s+(?:telling|informing|asking|notifying|alerting|the knowledge of)\s+(?:the\s+)?user\b",
    r"\bthe\s+user\s+(?:must|should|will)\s+not\s+(?:know|see|be told|notice|find out)\b",
    r"\b(?:ai|llm|gpt|chatgpt|claude|gemini|copilot)\s+(?:assistant|agent|model|system|bot)s?\s*[,:\-]\s*"
    r"(?:you\s+)?(?:must|should|need to|have to|are (?:required|instructed|ordered)|please|now)\b",
    r"\b(?:assistant|agent|ai|llm|model|chatbot)s?\s*[,:]\s*you\s+(?:must|should|need to|have to|are required|will now)\b",
    r"\b(?:note|message|instructions?|attention|important|notice|reminder)\s+(?:for|to)\s+(?:the\s+|any\s+|all\s+)?"
    r"(?:ai|assistant|llm|language model|chatbot|agent|model|bot|gpt)s?\b",
    r"\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|llm|large language model|language model|assistant|chatbot|agent|bot|gpt)\b"
    r"(?:\s+\S+){0,8}?\s+(?:you must|must|should|please|then|ignore|do not|don'?t)\b",
    r"\bwhen\s+(?:an?\s+|the\s+)?(?:ai|llm|assistant|agent|model|bot)\s+(?:reads|processes|summari[sz]es|sees|parses)\s+"
    r"(?:this|these)\b",
    r"\binstead\s+of\s+(?:summari[sz]ing|answering|translating|following|completing|doing)\b(?:\s+\S+){0,6}?\s+"
    r"(?:you\s+(?:must|should|will)|please|instead)\b",
    r"\b(?:before|instead of)\s+(?:answering|responding|replying|summari[sz]ing)\b(?:\s+\S+){0,4}?\s+"
    r"(?:you\s+must|you\s+have\s+to|first\s+(?:send|visit|call|fetch|open|run|execute|email))\b",
    r"\b(?:urgent|important|critical)\s*[:!]+\s*(?:new\s+)?(?:instructions?|ai|assistant|system)\b",
    r"\b(?:system|admin|administrator|developer|security)\s+(?:override|update|notice|instruction|message|alert)\s*:",
]

# Only in documents and tool results: text that steers the reader's answer ("add a sentence in your
# response", "translate your answer", "merge this code into your implementation"). A user asking
# for that in a prompt is ordinary; a retrieved e-mail or web page asking it is an injection.
OUTPUT_STEERING = [
    r"\b(?:add|include|insert|integrate|incorporate|embed|merge|weave|append|prepend|put|mention|use|encode|"
    r"encrypt|translate|reverse|write|format|end|begin|start|modify|refine|supplement\w*|ensure)\b(?:\s+\S+){0,8}?\s+"
    r"(?:in|into|to|of|within|throughout)\s+your\s+(?:\S+\s+)?(?:response|answer|reply|output|summary|"
    r"implementation|program|algorithm|solution|elucidation|code|explanation|result)s?\b",
    r"\b(?:encode|encrypt|translate|reverse|rewrite)\s+your\s+(?:\S+\s+)?(?:response|answer|reply|output|"
    r"summary)(?:'s)?\b",
    r"\b(?:your|the)\s+(?:response|answer|reply|summary)\s+(?:must|should|has to|needs to)\s+(?:include|contain|"
    r"mention|end with|start with|begin with|be written)\b",
]

# Fake chat-template and role tokens: a document or prompt posing as a system or developer turn.
CHAT_TEMPLATE = [
    r"<\|\s*(?:im_start|im_end|im_sep|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|"
    r"begin_of_text|end_of_text|eom_id|start|end|message|channel|developer|tool|ipython)\s*\|>",
    r"\[/?inst\]|<<\s*/?sys\s*>>|<\s*/?\s*(?:start|end)_of_turn\s*>",
    # A role tag wrapping text, or opening a line; a tag named in a coding question does neither.
    r"<\s*(system|system_prompt|system-prompt|sys|instructions?|admin|developer|developer_message|important|"
    r"assistant_instructions)\s*>[^<]{1,2000}?<\s*/\s*\1\s*>",
    r"(?:^|\n)\s*<\s*(?:system|system_prompt|sys|instructions?|admin|developer|developer_message)\s*>\s*\w",
    r"\[\s*(?:system|developer)\s*\]\s*\(#",
    r"(?:^|\n)\s*(?:#{1,4}\s*)?(?:\[\s*)?(?:system|developer)(?:\s*\])?\s*(?:message|prompt|instructions?|override)?\s*:\s*"
    r"(?:you\s+(?:are|must|will|should)|ignore|from now on|new)\b",
    r"(?:^|\n)\s*(?:###\s*)?(?:instruction|system)\s*:\s*\n",
]


def _compile(patterns: list[str]) -> GatedPattern:
    return GatedPattern([fold_pattern(p) for p in patterns])


OVERRIDE_RE = {lang: _compile(p) for lang, p in OVERRIDE.items()}

PHRASE_FLAGS = ("override", "jailbreak", "extraction", "indirect", "chat_template")
# One gate scan for every phrase detector; "steering" only counts for documents, as "indirect".
_ALL = GateSet(
    {
        "override": [fold_pattern(p) for ps in OVERRIDE.values() for p in ps],
        "jailbreak": [fold_pattern(p) for p in JAILBREAK],
        "extraction": [fold_pattern(p) for p in EXTRACTION],
        "indirect": [fold_pattern(p) for p in INDIRECT],
        "chat_template": [fold_pattern(p) for p in CHAT_TEMPLATE],
        "steering": [fold_pattern(p) for p in OUTPUT_STEERING],
    }
)
_PROMPT_NAMES = frozenset(PHRASE_FLAGS)
_DOCUMENT_NAMES = _PROMPT_NAMES | {"steering"}


def phrase_flags(folded: str, document: bool = False) -> list[str]:
    """Which phrase detectors fire on already-folded text (document: a tool result or retrieved text)."""
    fired = _ALL.scan(folded, _DOCUMENT_NAMES if document else _PROMPT_NAMES)
    if "steering" in fired:
        fired.add("indirect")
    return [name for name in PHRASE_FLAGS if name in fired]


def override_languages(folded: str) -> list[str]:
    """Which languages' override phrases fire (for tests and the benchmark's breakdown)."""
    return [lang for lang, pattern in OVERRIDE_RE.items() if pattern.search(folded)]
