"""Countries and regions the report names, recognised in Chinese text and in questions in eight languages.

``PLACES`` holds one row per country the report mentions (and the regions questions ask about): its
Chinese name as the report writes it, its English name, its region, and one pattern per script family
that finds it in accent-folded, lower-cased text (see ``rag.broad.fold``). Latin-script patterns cover
English, French, Spanish and German; Russian patterns are stems, so that case endings match.
``find_zh`` reads the report's Chinese (longest name first, so 印度尼西亚 is not 印度 and 马来西亚 is
not 西亚); ``find_in_question`` reads a question in any supported language.
"""
from __future__ import annotations

import dataclasses
import functools
import re

from rag.broad import fold


@dataclasses.dataclass(frozen=True)
class Place:
    zh: str  # as the report writes it; for a region, the report's word for it
    en: str
    region: str  # "" for a region itself
    patterns: str  # "|"-separated alternatives for other languages (folded, lower case)
    aliases_zh: tuple[str, ...] = ()

    @property
    def is_region(self) -> bool:
        return not self.region


AF, CA, SEA, SA, LA, EU, ME, PAC = "非洲", "中亚", "东南亚", "南亚", "拉美", "欧洲", "中东", "太平洋岛国"

PLACES = (
    Place("巴基斯坦", "Pakistan", SA, r"pakistan|пакистан|パキスタン|باكستان"),
    Place("孟加拉国", "Bangladesh", SA, r"bangladesh|бангладеш|バングラデシュ|بنغلاديش"),
    Place("斯里兰卡", "Sri Lanka", SA, r"sri lanka|шри-ланк|スリランカ|سريلانكا|سري لانكا"),
    Place("印度", "India", SA, r"\bindia\b|\binde\b|\bindien\b|\bинди[яиюей]|インド(?!ネシア)|الهند"),
    Place("哈萨克斯坦", "Kazakhstan", CA, r"kazakh|kasach|kazaj|казахстан|カザフスタン|كازاخستان", ("哈萨克",)),
    Place("乌兹别克斯坦", "Uzbekistan", CA, r"uzbek|ouzbek|usbek|узбекистан|ウズベキスタン|أوزبكستان|اوزبكستان"),
    Place("吉尔吉斯斯坦", "Kyrgyzstan", CA, r"kyrgyz|kirghiz|kirguis|kirgis|киргиз|кыргыз|キルギス|قيرغيزستان"),
    Place("印度尼西亚", "Indonesia", SEA, r"indonesi|индонези|インドネシア|إندونيسيا|اندونيسيا"),
    Place("泰国", "Thailand", SEA, r"thailand|thailande|tailandia|таиланд|тайланд|タイ王国|タイの|タイで|タイに|تايلاند"),
    Place("越南", "Vietnam", SEA, r"viet ?nam|вьетнам|ベトナム|فيتنام"),
    Place("老挝", "Laos", SEA, r"\blaos\b|\blao\b|лаос|ラオス|لاوس"),
    Place("柬埔寨", "Cambodia", SEA, r"cambod|camboya|kambodscha|камбодж|カンボジア|كمبوديا"),
    Place("马来西亚", "Malaysia", SEA, r"malaysi|malasia|малайзи|マレーシア|ماليزيا"),
    Place("新加坡", "Singapore", SEA, r"singap|singur|сингапур|シンガポール|سنغافورة"),
    Place("菲律宾", "Philippines", SEA, r"philippin|filipinas|филиппин|フィリピン|الفلبين"),
    Place("肯尼亚", "Kenya", AF, r"kenya|kenia|кени[яиюей]|ケニア|كينيا"),
    Place("加纳", "Ghana", AF, r"ghana|\bган[аыеуой]\b|ガーナ|غانا"),
    Place("多哥", "Togo", AF, r"\btogo\b|тоголез|республик\w* того|トーゴ|توغو"),
    Place("埃塞俄比亚", "Ethiopia", AF, r"ethiopi|etiopia|athiopien|эфиопи|エチオピア|إثيوبيا|اثيوبيا"),
    Place("南非", "South Africa", AF, r"south africa|afrique du sud|sudafrica|sudafrika|южн\w* африк|юар|南アフリカ|جنوب أفريقيا|جنوب افريقيا"),
    Place("尼日利亚", "Nigeria", AF, r"nigeria|нигери|ナイジェリア|نيجيريا"),
    Place("埃及", "Egypt", AF, r"egypt|egipto|agypten|египет|египт|エジプト|مصر"),
    Place("突尼斯", "Tunisia", AF, r"tunisi|tunez|tunesien|тунис|チュニジア|تونس"),
    Place("贝宁", "Benin", AF, r"\bbenin\b|бенин|ベナン|بنين"),
    Place("塞舌尔", "Seychelles", AF, r"seychel|сейшел|セーシェル|سيشل"),
    Place("几内亚", "Guinea", AF, r"(?<!new )(?<!nouvelle-)(?<!nueva )\bguinea\b|\bguinee\b|гвине[яиюей]|(?<!パプアニュー)ギニア|غينيا"),
    Place("阿根廷", "Argentina", LA, r"argentin|аргентин|アルゼンチン|الأرجنتين|الارجنتين"),
    Place("厄瓜多尔", "Ecuador", LA, r"ecuador|equateur|эквадор|エクアドル|الإكوادور|الاكوادور"),
    Place("智利", "Chile", LA, r"\bchile\b|\bchili\b|чили|チリ|تشيلي"),
    Place("古巴", "Cuba", LA, r"\bcuba\b|\bkuba\b|\bкуб[аыеуой]\b|キューバ|كوبا"),
    Place("秘鲁", "Peru", LA, r"\bperu\b|\bperou\b|перу|ペルー|بيرو"),
    Place("巴西", "Brazil", LA, r"brazil|bresil|brasil|бразили|ブラジル|البرازيل"),
    Place("多米尼加", "Dominican Republic", LA, r"dominican|dominicaine|dominicana|dominikanisch|доминикан|ドミニカ|الدومينيكان"),
    Place("黑山", "Montenegro", EU, r"montenegr|черногори|モンテネグロ|الجبل الأسود"),
    Place("匈牙利", "Hungary", EU, r"hungar|hongrie|ungarn|венгри|ハンガリー|المجر"),
    Place("塞尔维亚", "Serbia", EU, r"serbi|серби|セルビア|صربيا"),
    Place("白俄罗斯", "Belarus", EU, r"belarus|bielorussie|bielorrusia|weissrussland|белорус|беларус|ベラルーシ|بيلاروسيا"),
    Place("俄罗斯", "Russia", EU, r"\brussia|\brussie\b|\brusia\b|russland|росси[яиюей]|ロシア|روسيا"),
    Place("英国", "United Kingdom", EU, r"united kingdom|britain|royaume-uni|reino unido|grossbritannien|великобритани|イギリス|英国|بريطانيا"),
    Place("法国", "France", EU, r"\bfrance\b|\bfrancia\b|frankreich|франци|フランス|فرنسا"),
    Place("德国", "Germany", EU, r"germany|allemagne|alemania|deutschland|германи|ドイツ|ألمانيا|المانيا"),
    Place("阿联酋", "United Arab Emirates", ME, r"emirates|\buae\b|emirats|emiratos|emirate|эмират|\bоаэ\b|アラブ首長国連邦|ドバイ|الإمارات|الامارات|dubai|дубай|دبي", ("迪拜",)),
    Place("约旦", "Jordan", ME, r"jordan|jordanie|иордани|ヨルダン|الأردن|الاردن"),
    Place("沙特", "Saudi Arabia", ME, r"saudi|saoudite|saudita|саудовск|サウジ|السعودية"),
    Place("伊朗", "Iran", ME, r"\biran\b|иран|イラン|إيران|ايران"),
    Place("美国", "United States", "北美", r"united states|etats-unis|estados unidos|vereinigte staaten|\busa\b|сша|соединенн\w* штат|アメリカ|米国|الولايات المتحدة"),
    Place("巴布亚新几内亚", "Papua New Guinea", PAC, r"papua|papouasie|папуа|パプアニューギニア|بابوا"),
    Place("萨摩亚", "Samoa", PAC, r"samoa|самоа|サモア|ساموا"),
    Place("蒙古国", "Mongolia", "东北亚", r"mongol|монгол|モンゴル|منغوليا", ("蒙古",)),
    Place(AF, "Africa", "", r"africa|afrique|afrika|африк|アフリカ|أفريقيا|افريقيا"),
    Place(CA, "Central Asia", "", r"central asia|asie centrale|asia central|zentralasien|центральн\w* ази|中央アジア|آسيا الوسطى"),
    Place(SEA, "Southeast Asia", "", r"south-?east asia|asie du sud-est|sudeste asiatico|sudostasien|юго-восточн\w* ази|東南アジア|جنوب شرق آسيا"),
    Place(SA, "South Asia", "", r"south asia|asie du sud\b|asia del sur|sudasien|южн\w* ази|南アジア|جنوب آسيا"),
    Place(LA, "Latin America", "", r"latin america|amerique latine|america latina|lateinamerika|латинск\w* америк|ラテンアメリカ|中南米|أمريكا اللاتينية", ("拉丁美洲",)),
    Place(EU, "Europe", "", r"europe|europa|европ|ヨーロッパ|欧州|أوروبا|اوروبا"),
    Place(ME, "Middle East", "", r"middle east|west asia|moyen-orient|oriente medio|nahost|naher osten|ближн\w* восток|中東|الشرق الأوسط", ("西亚",)),
    Place(PAC, "Pacific island countries", "", r"pacific island|iles du pacifique|islas del pacifico|pazifikinsel|тихоокеанск|太平洋島嶼|جزر المحيط الهادئ"),
)
# Names the report writes that contain a country's name but are not that country.
NOT_PLACES = ("几内亚湾", "中东欧", "洛美", "阿巴西")


@functools.lru_cache(maxsize=1)
def _zh_pattern() -> tuple[re.Pattern, dict[str, Place]]:
    names = {name: place for place in PLACES for name in (place.zh, *place.aliases_zh)}
    alternatives = sorted([*names, *NOT_PLACES], key=len, reverse=True)
    return re.compile("|".join(re.escape(a) for a in alternatives)), names


def find_zh(text: str) -> list[Place]:
    """Places named in Chinese text, in order of first mention, each once."""
    pattern, names = _zh_pattern()
    found: list[Place] = []
    for match in pattern.finditer(text):
        place = names.get(match.group())
        if place and place not in found:
            found.append(place)
    return found


def find_in_question(question: str) -> list[Place]:
    """Places a question names, in any supported language (Chinese names and the other patterns)."""
    found = find_zh(question)
    text = fold(question)
    for place in PLACES:
        if place not in found and re.search(place.patterns, text):
            found.append(place)
    return found


def members(region: Place) -> tuple[Place, ...]:
    return tuple(p for p in PLACES if p.region == region.zh)
